"""nearest_image: an image of a point under the symmetry group, close to a reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import ortho_group

from critpoints import Setting, claim_setting, population_loss
from critpoints.landscape.orbits import orbit_key, same_orbit
from critpoints.landscape.symmetry_images import nearest_image


def claim3(d: int) -> Setting:
    return claim_setting("spectral", d)


def random_element(loss, theta, rng):
    """theta under a random neuron permutation, neuron signs, input permutation and input signs."""
    group, p = loss.symmetries, loss.setting.p
    theta = group.permute(theta, rng.permutation(group.m))
    theta = group.flip(theta, rng.choice([-1.0, 1.0], size=group.m))
    return group.act_on_inputs(theta, rng.permutation(p), rng.choice([-1.0, 1.0], size=p))


def test_a_scrambled_copy_is_brought_back_onto_its_reference():
    loss = population_loss(claim3(5))
    rng = np.random.default_rng(1)
    theta = loss.manifold.project(rng.standard_normal(loss.n_params))
    for _ in range(5):
        image = nearest_image(loss.symmetries, theta, random_element(loss, theta, rng))
        np.testing.assert_allclose(image, theta, atol=1e-14)


def test_a_one_neuron_move_between_minima_is_found_behind_the_symmetries():
    """W = I and W with neuron 0 moved onto atom 1: after scrambling, the image is one row away."""
    d = 6
    loss = population_loss(claim3(d))
    good = loss.pack(W=np.eye(d))
    moved = np.eye(d)
    moved[0] = moved[1]
    other = random_element(loss, loss.pack(W=moved), np.random.default_rng(3))
    image = nearest_image(loss.symmetries, good, other)
    assert np.sum((image - good) ** 2) == 2.0
    assert same_orbit(orbit_key(loss.symmetries, image), orbit_key(loss.symmetries, other))
    assert loss.value(image) == loss.value(other)


def test_rotations_are_undone_by_procrustes_for_linear_encoders():
    setting = Setting(p=3, d=3, m=3, loss="spectral", dictionary=("random", 2))
    loss = population_loss(setting)
    assert loss.symmetries.rotations
    theta = np.random.default_rng(0).standard_normal(loss.n_params)
    rotated = loss.symmetries.rotate(theta, ortho_group.rvs(3, random_state=4))
    np.testing.assert_allclose(nearest_image(loss.symmetries, theta, rotated), theta, atol=1e-12)


def _all_row_images(loss, theta):
    """Every image of theta under neuron permutations, row-entry permutations and the declared signs
    (entry signs, or neuron signs), by enumeration: the ground truth at m = 2, p = 3."""
    group = loss.symmetries
    m, p = loss.layout.shapes["W"]
    if group.entry_sign_flips:
        signs = [np.array(s).reshape(m, p) for s in itertools.product((1.0, -1.0), repeat=m * p)]
    else:
        signs = [np.array(s)[:, None] * np.ones((m, p)) for s in itertools.product((1.0, -1.0), repeat=m)]
    images = []
    for perm in itertools.permutations(range(m)):
        moved = group.permute(theta, np.array(perm))
        for rows in itertools.product(itertools.permutations(range(p)), repeat=m):
            permuted = group.permute_row_entries(moved, np.array(rows))
            images += [group.flip_entries(permuted, sign) for sign in signs]
    return np.array(images)


@pytest.mark.parametrize(
    "kwargs",
    [dict(bias=-0.3, constraint="unit_rows"), dict(bias="trainable", latent=("one_hot", "positive"))],
    ids=["entry-signs", "neuron-signs-trainable-bias"],
)
def test_row_entry_permutations_nearest_image_is_the_nearest_of_the_whole_group(kwargs):
    """m = 2, p = 3 (2 x 36 x 64 or 2 x 36 x 4 elements): the image found is the nearest one."""
    setting = Setting(p=3, d=3, m=2, loss="ncl_squared", encoder="symrelu", **kwargs)
    loss = population_loss(setting)
    group = loss.symmetries
    assert group.row_entry_permutations
    rng = np.random.default_rng(7)

    def point():
        blocks = loss.unpack(loss.manifold.project(rng.standard_normal(loss.n_params)))
        for name in ("b", "b_t"):  # biases large enough to decide which neurons pair up
            if name in blocks:
                blocks[name] = rng.normal(scale=3.0, size=2)
        return loss.pack(**blocks)

    for _ in range(5):
        reference, theta = point(), point()
        images = _all_row_images(loss, theta)
        best = np.linalg.norm(images - reference, axis=1).min()
        image = nearest_image(group, reference, theta)
        assert np.linalg.norm(image - reference) == pytest.approx(best, rel=1e-12)
        assert np.abs(images - image).max(axis=1).min() < 1e-12  # an image of theta


def _flips_and_input_permutations(group, rng, point):
    point = group.flip_entries(point, rng.choice([-1.0, 1.0], size=(5, 5)))
    return group.act_on_inputs(group.permute(point, rng.permutation(5)), rng.permutation(5), np.ones(5))


def _flips_and_row_permutations(group, rng, point):
    point = group.flip_entries(group.permute(point, rng.permutation(5)), rng.choice([-1.0, 1.0], size=(5, 5)))
    return group.permute_row_entries(point, np.stack([rng.permutation(5) for _ in range(5)]))


@pytest.mark.parametrize("scramble", [_flips_and_input_permutations, _flips_and_row_permutations])
def test_entry_flips_and_row_entry_permutations_are_undone_for_ncl_squared(scramble):
    """The claim setting at d = 5 (signed one-hot data): a copy scrambled by entry flips, neuron and
    input or row-entry permutations comes back exactly; a copy with one entry pair moved comes back
    that far away."""
    loss = population_loss(claim_setting("ncl_squared", 5))
    group = loss.symmetries
    assert group.entry_sign_flips and group.row_entry_permutations
    rng = np.random.default_rng(2)
    theta = loss.manifold.project(rng.standard_normal(loss.n_params))
    for _ in range(5):
        np.testing.assert_allclose(nearest_image(group, theta, scramble(group, rng, theta)), theta, atol=1e-14)
    blocks = loss.unpack(theta)
    blocks["W_t"][2, 3] += 0.1
    moved = loss.pack(**blocks)
    image = nearest_image(group, theta, scramble(group, rng, moved))
    assert np.linalg.norm(image - theta) == pytest.approx(0.1, rel=1e-12)
    assert loss.value(image) == pytest.approx(loss.value(moved), rel=1e-12)
