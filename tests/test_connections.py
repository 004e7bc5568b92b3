"""Connections of index-1 saddles and saddle searches on toys with known critical points.

The toys' critical points come from univariate polynomials or eigenvectors (tests/toy_systems.py),
and which minima a saddle joins from an independent integration of the gradient flow
(scipy's solve_ivp), not from the solver's saddle-free descent under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from toy_systems import (
    CoupledDoubleWell,
    RayleighQuotient,
    TriangularCubicField,
    make_double_well,
    make_rayleigh,
)

from critpoints.landscape.connections import (
    connect_saddles,
    geodesic,
    hessian_modes,
    path_maxima,
    search_starts,
    unstable_mode,
)
from critpoints.solver.newton import NewtonOptions, Status, newton_stationary
from critpoints.solver.restarts import InProcessExecutor, solve_from_starts

IN_PROCESS = InProcessExecutor()
WELL = (0.5, 0.3)


def flow_end(system, start: np.ndarray) -> np.ndarray:
    """Where the gradient flow d theta/dt = -grad f(theta) from ``start`` ends (integrated by RK45)."""
    solution = solve_ivp(lambda t, y: -system.residual(y), (0.0, 200.0), start, rtol=1e-11, atol=1e-13)
    return solution.y[:, -1]


def nearest(points: np.ndarray, theta: np.ndarray) -> tuple[int, float]:
    distances = np.linalg.norm(points - theta, axis=1)
    return int(np.argmin(distances)), float(distances.min())


def test_double_well_toy_has_four_minima_four_index_one_saddles_and_a_maximum():
    points, indices = CoupledDoubleWell(*WELL).critical_points()
    assert sorted(indices.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1, 2]
    system = CoupledDoubleWell(*WELL)
    assert max(np.linalg.norm(system.residual(p)) for p in points) < 1e-12


def test_every_index_one_saddle_joins_the_minima_the_gradient_flow_reaches_with_exact_barriers():
    system = CoupledDoubleWell(*WELL)
    points, indices = system.critical_points()
    minima, saddles = points[indices == 0], points[indices == 1]
    connections = connect_saddles(make_double_well, WELL, list(saddles), executor=IN_PROCESS)
    found_pairs = set()
    for saddle, connection in zip(saddles, connections):
        assert connection is not None
        mode = unstable_mode(system, saddle)
        expected = set()
        for sign in (1.0, -1.0):
            index, distance = nearest(minima, flow_end(system, saddle + sign * 1e-6 * mode.direction))
            assert distance < 1e-6
            expected.add(index)
        ends = set()
        for run in connection.ends:
            assert run.status == Status.CONVERGED
            index, distance = nearest(minima, run.theta)
            assert distance < 1e-9
            ends.add(index)
            barrier = connection.value - run.value
            exact = system.value(saddle) - system.value(minima[index])
            assert barrier == pytest.approx(exact, abs=1e-12) and barrier > 0
        assert ends == expected and len(ends) == 2
        found_pairs.add(frozenset(ends))
    assert len(found_pairs) == 4  # each saddle joins a different pair of neighbouring wells


def test_connections_of_the_saddles_newton_finds_from_random_starts():
    """End to end: the solver's own saddles (from restarts), not the exact ones, connect the same minima."""
    system = CoupledDoubleWell(*WELL)
    points, indices = system.critical_points()
    starts = np.random.default_rng(0).uniform(-1.5, 1.5, size=(60, 2))
    runs = solve_from_starts(make_double_well, WELL, starts, executor=IN_PROCESS, progress=False)
    saddles = []
    for run in runs:
        index, distance = nearest(points, run.theta)
        if run.converged and indices[index] == 1 and all(np.linalg.norm(run.theta - s) > 1e-6 for s in saddles):
            assert distance < 1e-9
            saddles.append(run.theta)
    assert len(saddles) == 4
    connections = connect_saddles(make_double_well, WELL, saddles, executor=IN_PROCESS)
    assert all(c is not None and all(run.converged for run in c.ends) for c in connections)


def test_points_that_are_not_index_one_saddles_give_no_connection():
    system = CoupledDoubleWell(*WELL)
    points, indices = system.critical_points()
    others = list(points[indices != 1])
    assert connect_saddles(make_double_well, WELL, others, executor=IN_PROCESS) == [None] * len(others)
    spectrum, values, vectors = hessian_modes(system, points[indices == 2][0])
    assert spectrum.kind == "maximum" and spectrum.index == 2 and np.all(values < 0)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(2), atol=1e-12)


def test_rayleigh_quotient_saddles_connect_both_minima_on_the_sphere():
    """f = x^T A x on S^2: the saddles +-v_2 descend to +v_1 and -v_1, barrier l_2 - l_1 on each side.

    Exercises the tangent eigenvector and the retraction under a constraint."""
    matrix = np.diag([1.0, 2.5, 4.0]) + 0.1 * np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    saddles = [eigenvectors[:, 1], -eigenvectors[:, 1]]
    connections = connect_saddles(make_rayleigh, (matrix,), saddles, executor=IN_PROCESS)
    for connection in connections:
        assert connection.eigenvalue == pytest.approx(2 * (eigenvalues[0] - eigenvalues[1]), abs=1e-12)
        ends = sorted(float(run.theta @ eigenvectors[:, 0]) for run in connection.ends)
        assert ends == pytest.approx([-1.0, 1.0], abs=1e-10)
        for run in connection.ends:
            assert connection.value - run.value == pytest.approx(eigenvalues[1] - eigenvalues[0], abs=1e-12)


def test_search_between_two_minima_reaches_the_saddle_between_them():
    system = CoupledDoubleWell(*WELL)
    points, indices = system.critical_points()
    saddles = points[indices == 1]
    connections = connect_saddles(make_double_well, WELL, list(saddles), executor=IN_PROCESS)
    for saddle, connection in zip(saddles, connections):
        a, b = (run.theta for run in connection.ends)
        found = [newton_stationary(system, start) for start in search_starts(system, a, b)]
        assert any(run.converged and np.linalg.norm(run.theta - saddle) < 1e-9 for run in found)


def test_geodesic_stays_on_the_sphere_and_path_maxima_are_the_interior_peaks():
    manifold = RayleighQuotient(np.eye(3)).manifold
    path = geodesic(manifold, np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), 9)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(path[[0, -1]], [[1, 0, 0], [0, 0, 1]], atol=1e-15)
    assert np.all(np.diff(path[:, 2]) > 0)
    assert path_maxima(np.array([0.0, 2.0, 1.0, 3.0, 3.0, 0.5])).tolist() == [3, 1]
    assert path_maxima(np.array([0.0, 1.0, 2.0])).size == 0


def test_options_without_descent_and_stop_gradient_fields_are_refused():
    system = CoupledDoubleWell(*WELL)
    saddle = system.critical_points()[0][1]
    with pytest.raises(ValueError, match="descent_iterations must be > 0"):
        connect_saddles(make_double_well, WELL, [saddle], options=NewtonOptions(), executor=IN_PROCESS)
    with pytest.raises(ValueError, match="step must lie in"):
        connect_saddles(make_double_well, WELL, [saddle], step=0.0, executor=IN_PROCESS)
    with pytest.raises(ValueError, match="stop-gradient field"):
        hessian_modes(TriangularCubicField(0.1), np.zeros(2))
