"""nearest_image: an image of a point under the symmetry group, close to a reference."""

from __future__ import annotations

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


def test_entry_sign_flips_are_undone_for_one_sparse_non_contrastive_losses():
    """ncl_squared on signed one-hot data: a copy scrambled by entry flips and permutations comes back
    exactly; a copy with one entry pair moved comes back one entry pair away."""
    setting = Setting(p=5, d=5, m=5, loss="ncl_squared", encoder="symrelu", bias=-0.3, constraint="unit_rows")
    loss = population_loss(setting)
    group = loss.symmetries
    assert group.entry_sign_flips
    rng = np.random.default_rng(2)
    theta = loss.manifold.project(rng.standard_normal(loss.n_params))

    def scrambled(point):
        point = group.flip_entries(point, rng.choice([-1.0, 1.0], size=(5, 5)))
        return group.act_on_inputs(group.permute(point, rng.permutation(5)), rng.permutation(5), np.ones(5))

    for _ in range(5):
        np.testing.assert_allclose(nearest_image(group, theta, scrambled(theta)), theta, atol=1e-14)
    blocks = loss.unpack(theta)
    blocks["W_t"][2, 3] += 0.1
    moved = loss.pack(**blocks)
    image = nearest_image(group, theta, scrambled(moved))
    assert np.linalg.norm(image - theta) == pytest.approx(0.1, rel=1e-12)
    assert loss.value(image) == pytest.approx(loss.value(moved), rel=1e-12)
