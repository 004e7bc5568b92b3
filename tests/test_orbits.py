"""Orbit keys and the exact orbit test against the group itself.

* random elements of every declared symmetry (neuron permutations within classes, sign
  flips, O(m), positive rescalings, signed input permutations) leave the key unchanged,
  and the exact test finds a group element that, applied with the group's own methods,
  maps one point onto the other;
* at m = p = 3 (m = p = 2 with entry sign flips: 2^(mp) signs x permutations) a brute-force
  scan over the whole discrete group decides which points of a set full of ties (signed
  atoms, duplicated neurons, entries in {-1, 0, 1}) share an orbit, and the exact test and
  the database agree with it pair by pair;
* a point moved off its orbit by a small perturbation is never merged with it.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from critpoints.landscape.orbits import (
    OrbitDatabase,
    canonical_point,
    orbit_key,
    orbit_map,
    same_orbit,
    same_point_orbit,
)
from critpoints.landscape.signed_isomorphism import SignedGraph, find_isomorphism
from critpoints.losses.parameters import ParameterLayout
from critpoints.losses.symmetries import SymmetryGroup


def group(m=3, p=3, *, classes=None, two=False, bias=False, predictor=False, inputs=True, input_signs=True,
          rotations=False, scalings=(), entries=False):  # fmt: skip
    layout = ParameterLayout.for_model(m=m, p=p, two_encoders=two, trainable_bias=bias, predictor=predictor)
    return SymmetryGroup(
        layout=layout,
        permutable=classes or (tuple(range(m)),),
        sign_flips=True,
        rotations=rotations,
        scalings=scalings,
        input_permutations=inputs,
        input_sign_flips=inputs and input_signs,
        entry_sign_flips=entries,
    )


#: Every combination of symmetries the settings declare (losses/symmetries.py setting_symmetries).
GROUPS = {
    "claim 3: S_m x Z_2^m x signed S_p": group(),
    "two classes, W_t, b, b_t, unsigned S_p": group(classes=((0, 1), (2,)), two=True, bias=True, input_signs=False),
    "predictor P, signed S_p": group(two=True, predictor=True),
    "random dictionary: no input symmetry": group(inputs=False),
    "O(m), scalings of W and W_t, signed S_p": group(two=True, rotations=True, scalings=(("W",), ("W_t",))),
    "O(m), P, scaling of P, fixed inputs": group(predictor=True, rotations=True, scalings=(("P",),), inputs=False),
    "rescaled (W, b) and (W_t, b_t), signed S_p": group(two=True, bias=True, scalings=(("W", "b"), ("W_t", "b_t"))),
    "one-sparse data: entry signs of (W, W_t), S_m x S_p": group(two=True, entries=True),
    "one-sparse data, m = p = 2: entry signs of W, S_m x S_p": group(2, 2, entries=True),
    "m = p = 2: entry signs of (W, W_t), b, b_t, two classes": group(
        2, 2, classes=((0,), (1,)), two=True, bias=True, entries=True
    ),
    "m = p = 2: entry signs, rescaled (W, b), (W_t, b_t)": group(
        2, 2, two=True, bias=True, scalings=(("W", "b"), ("W_t", "b_t")), entries=True
    ),
}
#: The groups small enough to enumerate (entry sign flips: 2^(m p) elements, so m = p = 2 only).
DISCRETE = {name: g for name, g in GROUPS.items() if not g.rotations and (not g.entry_sign_flips or g.m == 2)}


def random_element(g: SymmetryGroup, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """theta moved by a random element of every symmetry the group declares."""
    permutation = np.arange(g.m)
    for members in g.permutable:
        permutation[list(members)] = rng.permutation(list(members))
    theta = g.flip(g.permute(theta, permutation), rng.choice([-1.0, 1.0], g.m))
    if g.rotations:
        q, _ = np.linalg.qr(rng.standard_normal((g.m, g.m)))
        theta = g.rotate(theta, q)
    for blocks in g.scalings:
        theta = g.scale(theta, blocks, float(rng.uniform(0.2, 5.0)))
    if g.input_permutations:
        p = g.layout.shapes["W"][1]
        signs = rng.choice([-1.0, 1.0], p) if g.input_sign_flips else np.ones(p)
        theta = g.act_on_inputs(theta, rng.permutation(p), signs)
    if g.entry_sign_flips:
        theta = g.flip_entries(theta, rng.choice([-1.0, 1.0], g.layout.shapes["W"]))
    return theta


def tied_point(g: SymmetryGroup, rng: np.random.Generator) -> np.ndarray:
    """A point with the ties of these landscapes: signed atoms, duplicated rows, entries in {-1, 0, 1}."""
    theta = rng.integers(-1, 2, g.layout.size).astype(float)
    blocks = g.layout.unpack(theta)
    m, p = g.layout.shapes["W"]
    if rng.random() < 0.5:  # rows are signed atoms, some repeated
        blocks["W"] = np.eye(p)[rng.integers(0, p, m)] * rng.choice([-1.0, 1.0], (m, 1))
    if rng.random() < 0.5:
        blocks["W"][1] = blocks["W"][0]
    return g.layout.pack(**blocks)


@pytest.mark.parametrize("name", list(GROUPS))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tied=st.booleans())
def test_random_group_elements_keep_the_key_and_are_found(name, seed, tied):
    g = GROUPS[name]
    rng = np.random.default_rng(seed)
    theta = tied_point(g, rng) if tied else rng.standard_normal(g.layout.size)
    moved = random_element(g, theta, rng)
    assert same_orbit(orbit_key(g, theta), orbit_key(g, moved))
    found = orbit_map(g, theta, moved)
    assert found.found
    if not g.rotations:  # the element found, applied by the group's own methods, maps theta onto moved
        assert np.allclose(apply_map(g, theta, found, moved), normalised(g, moved), atol=1e-9)


def normalised(g: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    theta = np.array(theta)
    for blocks in g.scalings:
        norm = np.sqrt(sum(np.sum(theta[g.layout.slice(b)] ** 2) for b in blocks))
        theta = g.scale(theta, blocks, 1.0 / norm) if norm > 0 else theta
    return theta


def apply_map(g: SymmetryGroup, theta: np.ndarray, found, target: np.ndarray) -> np.ndarray:
    """The neuron-input map of orbit_map (vertex x of b is vertex mapping[x] of a) as a group element.

    Under entry sign flips the map is a pair of permutations (the graph's vertices are unsigned);
    the element is completed by the one sign of each entry pair that can match ``target``.
    """
    m = g.m
    theta = g.flip(g.permute(normalised(g, theta), found.mapping[:m]), found.signs[:m])
    if g.input_permutations:
        theta = g.act_on_inputs(theta, found.mapping[m:] - m, found.signs[m:])
    if g.entry_sign_flips:
        blocks, goal = g.layout.unpack(theta), g.layout.unpack(normalised(g, target))
        products = sum(blocks[name] * goal[name] for name in ("W", "W_t") if name in blocks)
        theta = g.flip_entries(theta, np.where(products < 0, -1.0, 1.0))
    return theta


def whole_group(g: SymmetryGroup):
    """Every element of the discrete group at small m, p, as (row perm, row signs, input perm, input signs)
    (under entry sign flips: row signs are (m, p) entry signs, input signs None)."""
    m, p = g.layout.shapes["W"]
    if g.entry_sign_flips:
        row_perms = [
            np.array(perm)
            for perm in itertools.permutations(range(m))
            if all(sorted(perm[i] for i in members) == sorted(members) for members in g.permutable)
        ]
        entry_signs = [np.array(s).reshape(m, p) for s in itertools.product((1.0, -1.0), repeat=m * p)]
        input_perms = [np.array(perm) for perm in itertools.permutations(range(p))] if g.input_permutations else [None]
        return itertools.product(row_perms, entry_signs, input_perms, [None])
    row_perms = [
        np.array(perm)
        for perm in itertools.permutations(range(m))
        if all(sorted(perm[i] for i in members) == sorted(members) for members in g.permutable)
    ]
    row_signs = [np.array(s) for s in itertools.product((1.0, -1.0), repeat=m)]
    input_perms = [np.array(perm) for perm in itertools.permutations(range(p))] if g.input_permutations else [None]
    input_signs = [np.array(s) for s in itertools.product((1.0, -1.0), repeat=p)] if g.input_sign_flips else [None]
    return itertools.product(row_perms, row_signs, input_perms, input_signs)


def brute_orbit(g: SymmetryGroup, theta: np.ndarray) -> set:
    theta = normalised(g, theta)
    p = g.layout.shapes["W"][1]
    orbit = set()
    for perm, signs, inputs, input_signs in whole_group(g):
        image = g.permute(theta, perm)
        image = g.flip_entries(image, signs) if g.entry_sign_flips else g.flip(image, signs)
        if inputs is not None:
            image = g.act_on_inputs(image, inputs, np.ones(p) if input_signs is None else input_signs)
        orbit.add(tuple(np.round(image, 9)))
    return orbit


@pytest.mark.parametrize("name", list(DISCRETE))
def test_brute_force_over_the_whole_group_agrees_on_every_pair(name):
    g = DISCRETE[name]
    rng = np.random.default_rng(3)
    bases = [tied_point(g, rng) for _ in range(6)]
    points = []
    for base in bases:
        points += [base, random_element(g, base, rng)]
        nudged = np.array(base)
        nudged[rng.integers(g.layout.size)] *= -1.0  # often another orbit with the same |entries|
        points.append(nudged)
    orbits = [brute_orbit(g, theta) for theta in points]
    keys = [tuple(np.round(normalised(g, theta), 9)) for theta in points]
    database = OrbitDatabase(g)
    indices = [database.add(theta) for theta in points]
    for a, b in itertools.combinations(range(len(points)), 2):
        truth = keys[b] in orbits[a]
        assert same_point_orbit(g, points[a], points[b]) == truth, (a, b)
        assert (indices[a] == indices[b]) == truth, (a, b)
    assert len(database) == len({min(orbit) for orbit in orbits})
    assert database.undecided == 0


@pytest.mark.parametrize("name", [name for name, g in GROUPS.items() if g.entry_sign_flips])
def test_canonical_point_fixes_entry_signs_and_neuron_order(name):
    """Entry flips and neuron permutations of a point give the same representative, which is an image."""
    g = GROUPS[name]
    rng = np.random.default_rng(9)
    for _ in range(5):
        theta = rng.standard_normal(g.layout.size)
        permutation = np.arange(g.m)
        for members in g.permutable:
            permutation[list(members)] = rng.permutation(list(members))
        moved = g.flip_entries(g.permute(theta, permutation), rng.choice([-1.0, 1.0], g.layout.shapes["W"]))
        representative = canonical_point(g, theta)
        np.testing.assert_allclose(canonical_point(g, moved), representative, atol=1e-12)
        assert same_point_orbit(g, theta, representative)


@pytest.mark.parametrize("name", list(GROUPS))
def test_a_perturbed_point_is_another_orbit(name):
    g = GROUPS[name]
    rng = np.random.default_rng(5)
    for _ in range(10):
        theta = tied_point(g, rng)
        moved = random_element(g, theta, rng)
        moved[rng.integers(g.layout.size)] += 1e-4
        assert not same_point_orbit(g, theta, moved)


def test_vertices_with_kinds_of_their_own_are_matched_without_a_search():
    """Under O(m) with fixed inputs every vertex (an input) has its own kind: the relabelling is
    forced, one search node decides, and a point off the orbit is still told apart."""
    g = GROUPS["O(m), P, scaling of P, fixed inputs"]
    rng = np.random.default_rng(11)
    for _ in range(10):
        theta = rng.standard_normal(g.layout.size)
        moved = random_element(g, theta, rng)
        found = orbit_map(g, theta, moved)
        assert found.found and found.nodes == 1
        np.testing.assert_array_equal(found.mapping, np.arange(len(found.mapping)))
        moved[rng.integers(g.layout.size)] += 1e-4
        assert not orbit_map(g, theta, moved).found


def test_signed_atom_minima_at_d10_merge_by_partition_and_only_by_partition():
    """p = d = m = 10, the claim-3 group: signed-atom points with duplicated neurons merge iff same partition."""
    g = group(10, 10)
    rng = np.random.default_rng(8)
    occupations = [(3, 2, 1, 1, 1, 1, 1), (2, 2, 2, 1, 1, 1, 1), (10,), (5, 5), (4, 3, 3)]
    database = OrbitDatabase(g)
    for _ in range(6):
        for occupation in occupations:
            atoms = rng.permutation(10)[: len(occupation)]
            rows = np.repeat(atoms, occupation)
            W = np.eye(10)[rows] * rng.choice([-1.0, 1.0], (10, 1))
            database.add(random_element(g, g.layout.pack(W=W), rng))
    assert database.counts == [6] * len(occupations)


@pytest.mark.parametrize("length", [3, 4, 5, 6])
def test_signed_cycles_are_told_apart_by_their_sign_product_alone(length):
    """A cycle whose edge signs multiply to +1 is switching-equivalent to the all-positive one; to -1, it
    is not. Every |weight| and every vertex look alike, so only the sign propagation and the final
    verification can decide."""
    rng = np.random.default_rng(length)

    def cycle(signs, relabel):
        edges = np.zeros((length, length, 1))
        for x in range(length):
            y = (x + 1) % length
            edges[relabel[x], relabel[y], 0] = edges[relabel[y], relabel[x], 0] = signs[x]
        return SignedGraph(edges, np.zeros(length, dtype=np.int64), np.ones(length, dtype=bool), np.zeros(0))

    positive = cycle(np.ones(length), np.arange(length))
    for _ in range(5):
        signs = rng.choice([-1.0, 1.0], length)
        other = cycle(signs, rng.permutation(length))
        result = find_isomorphism(positive, other)
        assert result.found == (np.prod(signs) > 0)
        assert not result.undecided


# ----------------------------------------------------------------- row-entry permutations


def row_group(m=3, p=3, *, classes=None, bias=False, entries=True, scalings=()):
    """A separable pair loss on exchangeable data: (S_p)^m row entries, with entry signs (signed
    codes, sigma = 0) or with neuron signs only (positive or two-sparse codes)."""
    layout = ParameterLayout.for_model(m=m, p=p, two_encoders=True, trainable_bias=bias, predictor=False)
    return SymmetryGroup(
        layout=layout,
        permutable=classes or (tuple(range(m)),),
        sign_flips=True,
        rotations=False,
        scalings=scalings,
        input_permutations=True,
        input_sign_flips=entries,
        entry_sign_flips=entries,
        row_entry_permutations=True,
    )


ROW_GROUPS = {
    "row entries, entry signs": row_group(),
    "row entries, neuron signs, b, b_t, two classes": row_group(classes=((0, 1), (2,)), bias=True, entries=False),
    "row entries, entry signs, rescaled (W, b), (W_t, b_t)": row_group(
        bias=True, scalings=(("W", "b"), ("W_t", "b_t"))
    ),
    "m = 2, p = 3: row entries, entry signs": row_group(2, 3),
    "m = 2, p = 3: row entries, neuron signs, b, b_t": row_group(2, 3, bias=True, entries=False),
    "m = 2, p = 3: row entries, entry signs, two classes": row_group(2, 3, classes=((0,), (1,)), bias=True),
}


def random_row_element(g: SymmetryGroup, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """theta moved by random neuron permutations, signs (of neurons or entries) and row-entry permutations."""
    m, p = g.layout.shapes["W"]
    theta = random_element(g, theta, rng)
    return g.permute_row_entries(theta, np.stack([rng.permutation(p) for _ in range(m)]))


def apply_row_map(g: SymmetryGroup, theta: np.ndarray, found) -> np.ndarray:
    """The map of orbit_map under row-entry permutations (vertex m + i p + j is entry (i, j)) as an image."""
    m, p = g.layout.shapes["W"]
    blocks = g.layout.unpack(normalised(g, theta))
    image = {}
    for name, value in blocks.items():
        if name in ("W", "W_t"):
            source = (found.mapping[m:] - m).reshape(m, p)
            signs = found.signs[:m, None] * found.signs[m:].reshape(m, p)
            image[name] = value.ravel()[source] * signs
        else:
            image[name] = value[found.mapping[:m]]
    return g.layout.pack(**image)


@pytest.mark.parametrize("name", list(ROW_GROUPS))
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tied=st.booleans())
def test_row_entry_permutations_keep_the_key_and_the_element_is_found(name, seed, tied):
    g = ROW_GROUPS[name]
    rng = np.random.default_rng(seed)
    theta = tied_point(g, rng) if tied else rng.standard_normal(g.layout.size)
    moved = random_row_element(g, theta, rng)
    assert same_orbit(orbit_key(g, theta), orbit_key(g, moved))
    found = orbit_map(g, theta, moved)
    assert found.found and not found.undecided
    np.testing.assert_allclose(apply_row_map(g, theta, found), normalised(g, moved), atol=1e-9)


def whole_row_group_images(g: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    """Every image of theta (scalings normalised) under the whole group, as rows of an array."""
    m, p = g.layout.shapes["W"]
    blocks = g.layout.unpack(normalised(g, theta))
    pairs = np.stack([blocks["W"], blocks["W_t"]])  # (2, m, p)
    biases = np.array([blocks[name] for name in ("b", "b_t") if name in blocks]).reshape(-1, m)
    if g.entry_sign_flips:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m * p))).reshape(-1, 1, m, p)
    else:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)))[:, None, :, None] * np.ones((1, 1, m, p))
    images = []
    for perm in itertools.permutations(range(m)):
        if not all(sorted(perm[i] for i in members) == sorted(members) for members in g.permutable):
            continue
        for rows in itertools.product(itertools.permutations(range(p)), repeat=m):
            moved = np.stack([pairs[:, perm[i], list(rows[i])] for i in range(m)], axis=1)  # (2, m, p)
            weights = (signs * moved[None]).reshape(len(signs), -1)
            rest = biases[:, list(perm)].ravel() if biases.size else np.zeros(0)
            images.append(np.hstack([weights, np.tile(rest, (len(signs), 1))]))
    return np.vstack(images)


def comparable(g: SymmetryGroup, theta: np.ndarray) -> np.ndarray:
    blocks = g.layout.unpack(normalised(g, theta))
    rest = [blocks[name] for name in ("b", "b_t") if name in blocks]
    return np.hstack([np.stack([blocks["W"], blocks["W_t"]]).ravel()] + rest)


@pytest.mark.parametrize("name", [name for name, g in ROW_GROUPS.items() if g.m == 2])
def test_brute_force_over_the_whole_row_group_agrees_on_every_pair(name):
    """m = 2, p = 3: all (3!)^2 row-entry permutations x neuron permutations x signs (2^6 entry signs,
    or 2^2 neuron signs) decide which points share an orbit; the exact test and the database agree."""
    g = ROW_GROUPS[name]
    rng = np.random.default_rng(3)
    points = []
    for _ in range(6):
        base = tied_point(g, rng)
        points += [base, random_row_element(g, base, rng)]
        nudged = np.array(base)
        nudged[rng.integers(g.layout.size)] *= -1.0  # often another orbit with the same |entries|
        points.append(nudged)
        swapped = g.layout.unpack(base)  # one entry of W exchanged across rows: the same multiset of entries
        swapped["W"][0, 0], swapped["W"][1, 0] = swapped["W"][1, 0], swapped["W"][0, 0]
        points.append(g.layout.pack(**swapped))
    orbits = [whole_row_group_images(g, theta) for theta in points]
    database = OrbitDatabase(g)
    indices = [database.add(theta) for theta in points]
    truths = []
    for a, b in itertools.combinations(range(len(points)), 2):
        truth = bool((np.abs(orbits[a] - comparable(g, points[b])).max(axis=1) < 1e-9).any())
        truths.append(truth)
        assert same_point_orbit(g, points[a], points[b]) == truth, (a, b)
        assert (indices[a] == indices[b]) == truth, (a, b)
    assert any(truths) and not all(truths)
    assert database.undecided == 0


@pytest.mark.parametrize("name", list(ROW_GROUPS))
def test_a_perturbed_point_is_another_row_orbit(name):
    g = ROW_GROUPS[name]
    rng = np.random.default_rng(5)
    for _ in range(10):
        theta = tied_point(g, rng)
        moved = random_row_element(g, theta, rng)
        moved[rng.integers(g.layout.size)] += 1e-4
        assert not same_point_orbit(g, theta, moved)


def test_near_ties_in_the_sorted_rows_do_not_split_an_orbit():
    """Entry pairs whose first components differ by less than the tolerance sort in either order under a
    perturbation; the exact test (an assignment of entries) still matches the rows."""
    g = row_group(2, 3)
    W = np.array([[0.50000004, 0.50000006, 0.1], [0.3, -0.2, 0.7]])  # rounded to 1e-7: 5000000, 5000001
    W_t = np.array([[0.9, 0.2, 0.4], [0.1, 0.6, -0.5]])
    theta = g.layout.pack(W=W, W_t=W_t)
    nudged = g.layout.pack(W=W + np.array([[3e-8, -3e-8, 0.0], [0.0, 0.0, 0.0]]), W_t=W_t)  # 5000001, 5000000
    first = [np.lexsort(np.round(g.layout.unpack(point)["W"][:1] / 1e-7)) for point in (theta, nudged)]
    assert not np.array_equal(*first)  # a rounded sort orders the two entries differently
    assert same_orbit(orbit_key(g, theta), orbit_key(g, nudged))
    assert same_point_orbit(g, theta, nudged)


@pytest.mark.parametrize("name", list(ROW_GROUPS))
def test_row_canonical_point_is_an_image_and_the_same_along_the_orbit(name):
    g = ROW_GROUPS[name]
    rng = np.random.default_rng(9)
    for _ in range(5):
        theta = rng.standard_normal(g.layout.size)
        representative = canonical_point(g, theta)
        np.testing.assert_allclose(canonical_point(g, random_row_element(g, theta, rng)), representative, atol=1e-12)
        assert same_point_orbit(g, theta, representative)


def test_row_canonical_point_recovers_as_many_atoms_as_the_orbit_allows():
    """The identity and the matrix whose rows all equal e_1 are one orbit; the representative of both puts
    the rows' largest entries in distinct columns, so it is the identity up to signs and order."""
    g = row_group(4, 4)
    stacked = np.tile(np.eye(4)[:1], (4, 1))
    for W in (np.eye(4), stacked):
        representative = g.layout.unpack(canonical_point(g, g.layout.pack(W=W, W_t=0.5 * W)))["W"]
        np.testing.assert_allclose(np.sort(np.abs(representative).argmax(axis=1)), np.arange(4))
    assert same_point_orbit(
        g, g.layout.pack(W=np.eye(4), W_t=0.5 * np.eye(4)), g.layout.pack(W=stacked, W_t=0.5 * stacked)
    )
    three = np.vstack([np.eye(4)[:3], np.full((1, 4), 0.5)])  # three aligned rows, one spread
    representative = g.layout.unpack(canonical_point(g, g.layout.pack(W=three, W_t=three)))["W"]
    aligned = np.abs(representative).max(axis=1) > 0.95
    assert aligned.sum() == 3 and len(set(np.abs(representative[aligned]).argmax(axis=1))) == 3


def test_signed_atoms_at_d10_are_one_row_orbit():
    """p = d = m = 10 under row-entry permutations: every matrix of signed atoms (any duplication) is one
    orbit, and points with one row moved off an atom are another."""
    g = row_group(10, 10)
    rng = np.random.default_rng(8)
    database = OrbitDatabase(g)
    for _ in range(20):
        W = np.eye(10)[rng.integers(0, 10, 10)] * rng.choice([-1.0, 1.0], (10, 1))
        database.add(g.layout.pack(W=W, W_t=W))
    assert database.counts == [20]
    W = np.eye(10)
    W[3] = np.sqrt(0.5) * (np.eye(10)[3] + np.eye(10)[4])
    assert database.add(g.layout.pack(W=W, W_t=W)) == 1


def test_labels_under_row_entry_permutations_warn_when_a_row_may_recover_two_atoms():
    """tau_good <= 1/sqrt(2): the representative recovering the most atoms may not be the one
    labelled (derivations/symmetries.md item 7), which describe_point says; above it, silence."""
    import warnings

    from critpoints import claim_setting, population_loss
    from critpoints.landscape.points import describe_point

    loss = population_loss(claim_setting("ncl_squared", 3))
    start = loss.manifold.project(np.random.default_rng(0).standard_normal(loss.n_params))
    theta = canonical_point(loss.symmetries, start)
    with pytest.warns(RuntimeWarning, match="1/sqrt"):
        describe_point(loss, theta, 1, tau_good=0.7, eigenvalue_tolerance=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        describe_point(loss, theta, 1, tau_good=0.95, eigenvalue_tolerance=1e-6)
