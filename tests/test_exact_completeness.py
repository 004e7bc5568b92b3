"""Exact completeness: the engine finds every real critical orbit of small polynomial landscapes.

derivations/exact_critical_points.py computes, exactly (Groebner bases over the rationals),
every real critical point of the linear spectral and ncl_squared losses at p = d = m = 2 in
closed form, with and without unit rows, one per symmetry orbit, with its loss and Hessian
spectrum. Here ``enumerate_critical_points`` must recover every one of those orbits
(recall 100%), report nothing else, report each orbit once, and classify each as the
exact spectrum does.
"""

from __future__ import annotations

import numpy as np
import pytest

import critpoints
from critpoints import Setting, enumerate_critical_points, population_loss, view_moments
from critpoints.solver.restarts import InProcessExecutor
from derivations import exact_critical_points as exact

IN_PROCESS = InProcessExecutor()

#: Starts per setting: the unit-row ncl_squared landscape has 36 orbits, some with small basins.
RESTARTS = {("ncl_squared", "unit_rows"): 600}


@pytest.fixture(scope="module", params=exact.SETTINGS, ids=lambda setting: setting.name)
def case(request):
    setting = request.param
    landscape = exact.critical_orbits(setting)
    package_setting = Setting(**setting.package_kwargs())
    n_restarts = RESTARTS.get((setting.loss, setting.constraint), 200)
    result = enumerate_critical_points(
        package_setting, n_restarts=n_restarts, seed=0, executor=IN_PROCESS, progress=False
    )
    return setting, landscape, package_setting, result


def test_exact_moments_are_the_package_moments(case):
    setting, _, package_setting, _ = case
    _, C11, C12 = setting.moments()
    moments = view_moments(package_setting)
    np.testing.assert_allclose(moments.x1x1, np.array(C11.tolist(), dtype=float), atol=1e-15)
    np.testing.assert_allclose(moments.x2x2, np.array(C11.tolist(), dtype=float), atol=1e-15)
    np.testing.assert_allclose(moments.x1x2, np.array(C12.tolist(), dtype=float), atol=1e-15)


def test_exact_points_are_stationary_for_the_package_loss(case):
    """The exact orbits' representatives are critical points of the package's loss, at the exact value."""
    setting, landscape, package_setting, _ = case
    loss = population_loss(package_setting)
    for orbit in landscape.orbits:
        theta = loss.pack(**orbit.representative)
        assert np.linalg.norm(loss.gradient(theta)) < 1e-12
        assert loss.value(theta) == pytest.approx(orbit.loss, abs=1e-12)


def test_engine_recovers_every_real_orbit_and_nothing_else(case):
    setting, landscape, _, result = case
    found = list(result)
    print(
        f"\n{setting.name}: exact real orbits {len(landscape.orbits)} "
        f"(complex solutions {landscape.n_complex}, real {landscape.n_real}); engine orbits {len(found)}"
    )
    missing = [orbit for orbit in landscape.orbits if not any(exact.matches(setting, orbit, p.params) for p in found)]
    assert not missing, f"{len(missing)} exact orbits not found, losses {[o.loss for o in missing]}"
    for point in found:
        owners = [orbit for orbit in landscape.orbits if exact.matches(setting, orbit, point.params)]
        assert len(owners) == 1, f"engine point at loss {point.loss} matches {len(owners)} exact orbits"
        (orbit,) = owners
        assert point.loss == pytest.approx(orbit.loss, abs=1e-9)
        assert (point.kind, point.nullity) == (orbit.kind, 0)
        assert point.smallest_eigenvalue == pytest.approx(orbit.eigenvalues[0], rel=1e-6, abs=1e-9)
        assert point.largest_eigenvalue == pytest.approx(orbit.eigenvalues[-1], rel=1e-6, abs=1e-9)
        assert point.index == orbit.index  # W = 0 too: see test_index_at_the_fixed_point_of_the_rotations
    assert len(found) == len(landscape.orbits)  # one entry per orbit: no orbit reported twice


def fixed_by_rotations(setting, orbit) -> bool:
    """Whether the orbit is the point W = 0 of a setting with the continuous O(2) symmetry."""
    return setting.constraint == "none" and not any(np.any(block) for block in orbit.representative.values())


def test_index_at_the_fixed_point_of_the_rotations():
    """At a converged W ~ 1e-11 (a numerical fixed point of O(2)) the rotation generators are
    round-off: no genuine Hessian direction may be removed as a symmetry mode."""
    setting = next(s for s in exact.SETTINGS if s.name == "spectral/none/rotated")
    landscape = exact.critical_orbits(setting)
    (orbit,) = [o for o in landscape.orbits if fixed_by_rotations(setting, o)]
    package_setting = Setting(**setting.package_kwargs())
    loss = population_loss(package_setting)
    near_zero = loss.pack(W=np.array([[1e-12, 0.0], [0.0, 0.0]]))  # where Newton stops (|W| ~ 1e-11)
    point = critpoints.landscape.points.describe_point(loss, near_zero, 1, tau_good=0.95, eigenvalue_tolerance=1e-7)
    assert (point.kind, point.index) == (orbit.kind, orbit.index) == ("maximum", 4)


def test_counts_of_the_exact_landscapes():
    """The numbers reported in CLAIMS.md (complex solutions, real orbits, kinds)."""
    expected = {
        "spectral/none/rotated": (4, {"minimum": 1, "saddle": 2, "maximum": 1}),
        "spectral/unit_rows/rotated": (8, {"minimum": 1, "saddle": 2, "maximum": 1}),
        "ncl_squared/none/rotated": (1, {"minimum": 1}),
        "ncl_squared/unit_rows/rotated": (256, {"minimum": 3, "saddle": 30, "maximum": 3}),
        "spectral/none/identity": (4, {"minimum": 1, "saddle": 2, "maximum": 1}),
        "spectral/unit_rows/identity": (8, {"minimum": 1, "saddle": 2, "maximum": 2}),
        "ncl_squared/none/identity": (1, {"minimum": 1}),
    }
    for setting in exact.SETTINGS:
        landscape = exact.critical_orbits(setting)
        kinds: dict[str, int] = {}
        for orbit in landscape.orbits:
            kinds[orbit.kind] = kinds.get(orbit.kind, 0) + 1
        assert (landscape.n_complex, kinds) == expected[setting.name], setting.name


def test_isotropic_one_hot_setting_has_a_continuum_of_critical_points():
    """Why the settings above are not one-hot: with Sigma = I/2 the critical set is not finite."""
    assert exact.one_hot_is_positive_dimensional()
    setting = Setting(p=2, d=2, m=2, loss="spectral", constraint="unit_rows", augmentation=("independent_mask", 0.5))
    loss = population_loss(setting)
    angle = 0.3
    for shift in (0.0, 0.4, 1.1):  # rows at a right angle, rotated together: all critical, same loss
        W = np.array([[np.cos(angle + shift), np.sin(angle + shift)], [-np.sin(angle + shift), np.cos(angle + shift)]])
        theta = loss.pack(W=W)
        assert np.linalg.norm(loss.gradient(theta)) < 1e-12
        assert loss.value(theta) == pytest.approx(loss.value(loss.pack(W=np.eye(2))), abs=1e-14)
