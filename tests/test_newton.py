"""Tests of the generic solver layer: critpoints.solver.newton and critpoints.solver.restarts.

The toy systems (tests/toy_systems.py) have exact solutions computed independently of the
solver (cubic roots, eigenvectors), so every check compares the solver with a closed form:
all critical points of every index are found, each with the right index; the failure
statuses (gradient-flat, stalled, diverged, max_iterations) are reported where they must
be and ``converged`` never above the tolerance; deflation steers away from known roots;
the restart driver gives the same bits whatever runs it.
"""

from __future__ import annotations

import concurrent.futures
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_systems import (
    CauchyLoss1D,
    CountingSystem,
    Forwarding,
    MexicanHat,
    PowellSingular,
    Quartic1D,
    RayleighQuotient,
    RotatingMexicanHat,
    SeparableQuartic,
    TiltedValley,
    TriangularCubicField,
    make_logged_quartic,
    make_quartic,
)

import critpoints
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.system import LossSystem
from critpoints.solver import restarts
from critpoints.solver.newton import (
    NewtonOptions,
    NewtonResult,
    StationarySystem,
    Status,
    _direct_solution,
    _lift_null_directions,
    deflation_log_factor,
    newton_stationary,
)
from critpoints.solver.restarts import distinct_solutions, solve_from_starts

TILTS = (0.3, -0.2, 0.1)
MATCH = 1e-8  # distance below which a found point is a known one


def quartic_starts(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.6, 1.6, size=(count, 3))


def nearest(points: np.ndarray, theta: np.ndarray) -> tuple[int, float]:
    distances = np.linalg.norm(points - theta, axis=1)
    index = int(np.argmin(distances))
    return index, float(distances[index])


def same_bits(a: list[NewtonResult], b: list[NewtonResult]) -> bool:
    return len(a) == len(b) and all(
        x.theta.tobytes() == y.theta.tobytes()
        and x.status == y.status
        and x.iterations == y.iterations
        and x.residual_norm == y.residual_norm
        for x, y in zip(a, b)
    )


# ---------------------------------------------------------------------------- finding all points


def test_toys_follow_the_protocol():
    for system in (make_quartic(TILTS), RayleighQuotient(np.eye(3)), TriangularCubicField(0.2)):
        assert isinstance(system, StationarySystem)


def test_quartic_every_critical_point_found_with_its_index():
    system = make_quartic(TILTS)
    points, indices = system.critical_points()
    assert len(points) == 27 and set(indices.tolist()) == {0, 1, 2, 3}
    np.testing.assert_allclose([np.linalg.norm(system.residual(p)) for p in points], 0.0, atol=1e-13)
    found = set()
    for start in quartic_starts(300, seed=0):
        result = newton_stationary(system, start)
        assert result.status == Status.CONVERGED
        index, distance = nearest(points, result.theta)
        assert distance < MATCH
        hessian_index = int(np.sum(np.linalg.eigvalsh(system.hessian(result.theta)) < 0))
        assert hessian_index == indices[index]
        found.add(index)
    assert found == set(range(27))


def test_rayleigh_quotient_on_the_sphere_every_eigenvector_with_index():
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    matrix = basis @ np.diag([-1.0, 0.5, 2.0, 3.5]) @ basis.T
    system = RayleighQuotient(matrix)
    points, indices = system.critical_points()
    found = set()
    for start in rng.standard_normal((60, 4)):
        result = newton_stationary(system, start)
        assert result.status == Status.CONVERGED
        assert system.manifold.is_on_manifold(result.theta, tol=1e-12)
        index, distance = nearest(points, result.theta)
        assert distance < MATCH
        assert int(np.sum(system.hessian_spectrum(result.theta) < 0)) == indices[index]
        found.add(index)
    assert found == set(range(8))


def test_non_gradient_field_every_zero_found():
    system = TriangularCubicField(coupling=0.25)
    jacobian = system.residual_jacobian(np.array([0.3, -0.7]))
    assert not np.allclose(jacobian, jacobian.T)
    zeros = system.zeros()
    assert len(zeros) == 9
    found = set()
    for start in np.random.default_rng(5).uniform(-1.7, 1.7, size=(120, 2)):
        result = newton_stationary(system, start)
        assert result.status == Status.CONVERGED
        index, distance = nearest(zeros, result.theta)
        assert distance < MATCH
        found.add(index)
    assert found == set(range(9))


def test_quadratic_convergence_with_a_non_symmetric_jacobian():
    system = TriangularCubicField(coupling=0.25)
    for zero in system.zeros():
        result = newton_stationary(system, zero + np.array([1e-2, -1e-2]))
        assert result.status == Status.CONVERGED and result.iterations <= 4
        assert np.linalg.norm(result.theta - zero) < MATCH


def test_singular_jacobian_on_a_symmetry_orbit_still_converges():
    system = MexicanHat()
    starts = np.random.default_rng(7).uniform(-2.0, 2.0, size=(40, 2))
    radii = []
    for start in starts:
        result = newton_stationary(system, start)
        assert result.status == Status.CONVERGED
        radii.append(np.linalg.norm(result.theta))
    radii = np.array(radii)
    on_circle = np.abs(radii - 1.0) < 1e-9
    at_origin = radii < 1e-9
    assert np.all(on_circle | at_origin) and np.sum(on_circle) > 30


@pytest.mark.parametrize("symmetric", [True, False])
def test_quotient_solve_is_the_minimal_norm_newton_step(symmetric):
    """With A N = 0 and rho in the range of A, the LU solve of A + c N N^T solves A s = rho
    with s orthogonal to N (so s = A^+ rho for symmetric A), whether A is symmetric or block
    triangular [[0, X], [0, C]] in the basis [N, complement] (a field's Jacobian at a zero)."""
    rng = np.random.default_rng(3)
    n, k = 7, 3
    frame = np.linalg.qr(rng.standard_normal((n, n)))[0]
    directions = frame[:, :k] @ rng.standard_normal((k, k))  # spans the null space, not orthonormal
    inner = rng.standard_normal((n - k, n - k))
    inner = inner + inner.T if symmetric else inner
    block = np.zeros((n, n))
    block[k:, k:] = inner
    if not symmetric:
        block[:k, k:] = rng.standard_normal((k, n - k))
    matrix = frame @ block @ frame.T
    assert np.allclose(matrix @ directions, 0.0)
    rho = matrix @ rng.standard_normal(n)
    step = _direct_solution(_lift_null_directions(matrix, directions), rho, 1e-12)
    np.testing.assert_allclose(matrix @ step, rho, atol=1e-10)
    np.testing.assert_allclose(directions.T @ step, 0.0, atol=1e-10)
    if symmetric:
        np.testing.assert_allclose(step, np.linalg.pinv(matrix) @ rho, atol=1e-10)


def test_direct_solution_refuses_a_singular_matrix():
    matrix = np.diag([2.0, 1.0, 1e-14])
    assert _direct_solution(matrix, np.ones(3), 1e-9) is None
    np.testing.assert_allclose(_direct_solution(matrix[:2, :2], np.ones(2), 1e-9), [0.5, 1.0])


def test_steps_orthogonal_to_the_null_directions_keep_the_angle():
    """On the Mexican hat the gradient is radial and the rotation generator is tangential, so
    quotient Newton steps are radial: every start ends on the circle at +-start / |start| (or at
    the maximum 0)."""
    starts = np.random.default_rng(8).uniform(-2.0, 2.0, size=(20, 2))
    for start in starts:
        result = newton_stationary(RotatingMexicanHat(), start)
        assert result.status == Status.CONVERGED
        x, y = result.theta
        assert abs(x * start[1] - y * start[0]) < 1e-9 * np.linalg.norm(start)  # parallel to the start
        assert abs(np.linalg.norm(result.theta) - 1.0) < 1e-9 or np.linalg.norm(result.theta) < 1e-9


def test_null_directions_of_the_wrong_shape_are_refused():
    class FlatDirections(MexicanHat):
        def null_directions(self, theta):
            return np.array([-theta[1], theta[0]])  # one vector, but not as a column

    with pytest.raises(ValueError, match=r"null_directions\(theta\) must return an array of shape \(2, k\)"):
        newton_stationary(FlatDirections(), np.array([0.3, 0.4]))


def test_stepping_orthogonally_to_symmetry_orbits_converges_more_often_in_fewer_steps():
    """Linear spectral loss (O(m)-invariant): the quotient Newton runs converge from every start,
    in fewer iterations than the runs that also invert the orbit directions."""
    setting = critpoints.Setting(
        p=6,
        d=6,
        m=6,
        loss="spectral",
        dictionary=("random", 0),
        noise=0.1,
        latent=("fixed_count", 2, 1),
        augmentation=("independent_mask", 0.5),
    )
    system = LossSystem(critpoints.population_loss(setting))
    starts = initial_points(system.loss, 40, np.random.default_rng(0), "gaussian")
    quotient = [newton_stationary(system, start) for start in starts]
    plain = [newton_stationary(Forwarding(system, null_directions=False), start) for start in starts]
    assert all(result.converged for result in quotient)
    assert sum(result.converged for result in quotient) >= sum(result.converged for result in plain)
    assert np.mean([r.iterations for r in quotient]) < 0.8 * np.mean([r.iterations for r in plain])


def test_levenberg_marquardt_fallback_escapes_powells_stall():
    result = newton_stationary(PowellSingular(), np.array([3.0, 0.5]))
    assert result.status == Status.CONVERGED
    assert abs(result.theta[0]) < 1e-12 and abs(result.theta[1]) < 1e-4


def test_work_per_iteration():
    system = CountingSystem(make_quartic(TILTS))
    root = system.system.critical_points()[0][13]
    result = newton_stationary(system, root + 1e-3)
    assert result.status == Status.CONVERGED and result.iterations >= 2
    # Full Newton steps accepted: one residual per trial point, reused as the next iterate.
    assert system.calls == {
        "value": 2,
        "residual": 1 + result.iterations,
        "residual_jacobian": result.iterations,
    }
    flat = CountingSystem(TiltedValley(1e-7, 1e-13))
    assert newton_stationary(flat, np.array([1.0, 1.0])).status == Status.GRADIENT_FLAT
    # After one step the residual lies in the numerical null space: stop without trials.
    assert flat.calls == {"value": 2, "residual": 2, "residual_jacobian": 2}


# ---------------------------------------------------------------------------- failure statuses


@pytest.mark.parametrize("curvature", [0.0, 1e-13])  # exact and numerical null space
@pytest.mark.parametrize("start", [(1.0, 1.0), (-3.0, 0.2), (0.5, -40.0)])
def test_flat_direction_with_small_gradient_is_gradient_flat(start, curvature):
    result = newton_stationary(TiltedValley(1e-7, curvature), np.array(start))
    assert result.status == Status.GRADIENT_FLAT
    assert result.residual_norm == pytest.approx(1e-7, rel=1e-4)
    assert abs(result.theta[0]) < 1e-12  # the Newton step solved the range part exactly


def test_flat_direction_with_large_gradient_is_stalled_not_flat():
    result = newton_stationary(TiltedValley(0.1), np.array([1.0, 1.0]))
    assert result.status == Status.STALLED
    assert result.residual_norm == pytest.approx(0.1)


def test_runaway_newton_is_diverged():
    options = NewtonOptions()
    result = newton_stationary(CauchyLoss1D(), np.array([3.0]), options)
    assert result.status == Status.DIVERGED
    assert abs(result.theta[0]) > options.divergence_radius
    assert result.residual_norm > options.tol * result.scale
    inside = newton_stationary(CauchyLoss1D(), np.array([0.5]), options)
    assert inside.status == Status.CONVERGED and abs(inside.theta[0]) < 1e-10


def test_non_finite_residual_is_diverged():
    class Exploding(Quartic1D):
        def residual(self, theta):
            return np.array([np.nan])

    assert newton_stationary(Exploding(), np.array([1.0])).status == Status.DIVERGED


def test_max_iterations():
    slow = newton_stationary(Quartic1D(), np.array([1.0]))
    assert slow.status == Status.CONVERGED and slow.iterations > 5
    capped = newton_stationary(Quartic1D(), np.array([1.0]), NewtonOptions(max_iterations=5))
    assert capped.status == Status.MAX_ITERATIONS and capped.iterations == 5
    assert capped.residual_norm > capped.scale * 1e-10


def test_creeping_run_is_stalled():
    # Newton on x^4 divides the residual 4 x^3 by (3/2)^3 = 3.375 per step.
    assert (
        newton_stationary(Quartic1D(), np.array([1.0]), NewtonOptions(stall_window=1, stall_decrease=0.6)).status
        == Status.CONVERGED
    )
    creeping = newton_stationary(Quartic1D(), np.array([1.0]), NewtonOptions(stall_window=1, stall_decrease=0.8))
    assert creeping.status == Status.STALLED and creeping.iterations == 1
    flat = newton_stationary(Quartic1D(), np.array([0.01]), NewtonOptions(stall_window=2, stall_decrease=0.95))
    assert flat.status == Status.GRADIENT_FLAT and flat.iterations == 2


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    tol_exponent=st.integers(-13, -3),
    max_iterations=st.integers(0, 8),
    toy=st.sampled_from(["quartic", "field", "valley", "cauchy", "quartic1d"]),
)
def test_converged_never_above_tolerance(seed, tol_exponent, max_iterations, toy):
    system = {
        "quartic": make_quartic(TILTS),
        "field": TriangularCubicField(0.25),
        "valley": TiltedValley(1e-6),
        "cauchy": CauchyLoss1D(),
        "quartic1d": Quartic1D(),
    }[toy]
    tol = 10.0**tol_exponent
    options = NewtonOptions(tol=tol, flat_tol=max(tol, 1e-5), max_iterations=max_iterations)
    start = np.random.default_rng(seed).uniform(-3.0, 3.0, size=system.manifold.n)
    result = newton_stationary(system, start, options)
    true_norm = float(np.linalg.norm(system.residual(result.theta)))
    assert result.residual_norm == pytest.approx(true_norm, rel=1e-12, abs=1e-300)
    assert result.scale == max(1.0, abs(system.value(system.manifold.project(start))))
    assert result.iterations <= max_iterations
    if result.status == Status.CONVERGED:
        assert true_norm <= tol * result.scale
    else:
        assert true_norm > tol * result.scale


def test_fixed_scale_option():
    system = make_quartic(TILTS)
    start = np.array([5.0, 5.0, 5.0])  # f(start) ~ 1700
    free = newton_stationary(system, start, NewtonOptions(tol=1e-6, max_iterations=3))
    fixed = newton_stationary(system, start, NewtonOptions(tol=1e-6, max_iterations=3, scale=1.0))
    assert free.scale == pytest.approx(abs(system.value(start))) and fixed.scale == 1.0


# ---------------------------------------------------------------------------- deflation


def test_deflation_log_factor_and_gradient():
    rng = np.random.default_rng(11)
    known = rng.standard_normal((4, 3))
    theta = rng.standard_normal(3)
    power, shift = 2.5, 0.7
    log_mu, gradient = deflation_log_factor(theta, known, power, shift)
    distances = np.linalg.norm(theta - known, axis=1)
    assert log_mu == pytest.approx(np.log(np.prod(distances**-power + shift)), rel=1e-13)
    step = 1e-6
    numeric = [
        (
            deflation_log_factor(theta + step * e, known, power, shift)[0]
            - deflation_log_factor(theta - step * e, known, power, shift)[0]
        )
        / (2 * step)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-7)
    assert deflation_log_factor(known[1], known, power, shift)[0] == np.inf


def test_deflated_step_is_the_newton_step_of_the_deflated_residual():
    # Linear residual r = M (theta - root) with M nonsingular and not symmetric.
    class Linear:
        is_gradient = False
        manifold = TriangularCubicField(0.0).manifold
        matrix = np.array([[2.0, 1.0], [-0.5, 1.5]])
        root = np.array([0.3, -0.4])

        def value(self, theta):
            return 0.0

        def residual(self, theta):
            return self.matrix @ (theta - self.root)

        def residual_jacobian(self, theta):
            return self.matrix

    system = Linear()
    known = np.array([[1.0, 1.0], [-1.0, 0.5]])
    theta0 = np.array([0.9, 0.4])
    options = NewtonOptions(max_iterations=1)
    result = newton_stationary(system, theta0, options, deflation=known)
    log_mu, grad_log_mu = deflation_log_factor(theta0, known, 2.0, 1.0)
    mu = np.exp(log_mu)
    r = system.residual(theta0)
    deflated_jacobian = mu * system.matrix + np.outer(r, mu * grad_log_mu)
    deflated_step = np.linalg.solve(deflated_jacobian, -mu * r)
    undeflated_step = np.linalg.solve(system.matrix, -r)
    assert not np.allclose(deflated_step, undeflated_step)  # deflation changes the step
    taken = result.theta - theta0
    alpha = taken @ deflated_step / (deflated_step @ deflated_step)
    np.testing.assert_allclose(taken, alpha * deflated_step, atol=1e-14)
    assert alpha > 0 and np.log2(alpha) == pytest.approx(round(np.log2(alpha)), abs=1e-9)


class Identity1D:
    """``f(x) = x^2 / 2``: residual ``r = x``, one root at 0."""

    is_gradient = True
    manifold = Quartic1D.manifold

    def value(self, theta):
        return float(0.5 * theta[0] ** 2)

    def residual(self, theta):
        return theta.copy()

    def residual_jacobian(self, theta):
        return np.eye(1)


def test_deflating_the_only_root_pushes_to_the_minimum_of_the_deflated_residual():
    # G(x) = (x^-2 + 1) x = x + 1/x has no zero; |G| is smallest at |x| = 1.
    one_step = newton_stationary(Identity1D(), np.array([0.1]), NewtonOptions(max_iterations=1), deflation=[[0.0]])
    g_dot_s = (-2.0 * 0.1 / (0.1**2 * (1.0 + 0.1**2))) * -0.1
    assert one_step.theta[0] == pytest.approx(0.1 - 0.1 / (1.0 - g_dot_s), rel=1e-12)  # alpha = 1
    for start in (0.1, -0.3, 2.0):
        result = newton_stationary(Identity1D(), np.array([start]), deflation=[[0.0]])
        assert result.status == Status.STALLED
        assert abs(result.theta[0]) == pytest.approx(1.0, abs=1e-4)


def test_deflation_steers_a_start_away_from_its_root():
    system = make_quartic(TILTS)
    points, _ = system.critical_points()
    start = np.array([0.9, -1.1, 0.05])
    plain = newton_stationary(system, start)
    assert plain.status == Status.CONVERGED
    root, _ = nearest(points, plain.theta)
    deflated = newton_stationary(system, start, deflation=[points[root]])
    assert np.linalg.norm(deflated.theta - points[root]) > 1e-3
    if deflated.status == Status.CONVERGED:
        assert nearest(points, deflated.theta)[1] < MATCH


def test_deflated_runs_never_converge_to_a_deflated_root():
    system = make_quartic(TILTS)
    points, _ = system.critical_points()
    known = points[::2]  # 14 of the 27
    converged_elsewhere = 0
    for start in quartic_starts(80, seed=2):
        result = newton_stationary(system, start, deflation=known)
        if result.status == Status.CONVERGED:
            assert np.min(np.linalg.norm(known - result.theta, axis=1)) > 1e-3
            assert nearest(points, result.theta)[1] < MATCH
            converged_elsewhere += 1
    assert converged_elsewhere > 40


def test_deflation_reports_the_true_status_at_a_known_root():
    system = make_quartic(TILTS)
    root = system.critical_points()[0][4]
    result = newton_stationary(system, root, deflation=[root])
    assert result.status == Status.CONVERGED and np.array_equal(result.theta, root)


def first_start_completing(results: list[NewtonResult], points: np.ndarray) -> int | None:
    """1 + the position of the start after which every point has been found."""
    found = set()
    for position, result in enumerate(results):
        if result.status == Status.CONVERGED:
            found.add(nearest(points, result.theta)[0])
        if len(found) == len(points):
            return position + 1
    return None


def test_sequential_deflation_needs_fewer_starts():
    system = make_quartic(TILTS)
    points, _ = system.critical_points()
    starts = quartic_starts(150, seed=1)
    # Roots are about 1 apart here: a deflation radius shift^(-1/2) ~ 0.3 keeps it local.
    options = NewtonOptions(deflation_shift=10.0)
    plain = solve_from_starts(make_quartic, (TILTS,), starts, options=options, progress=False)
    deflated = solve_from_starts(
        make_quartic,
        (TILTS,),
        starts[:60],
        options=options,
        progress=False,
        deflate=True,
        chunk_size=1,
    )
    plain_count = first_start_completing(plain, points)
    deflated_count = first_start_completing(deflated, points)
    assert plain_count is not None and deflated_count is not None
    assert deflated_count < plain_count
    converged = [r.theta for r in deflated if r.status == Status.CONVERGED]
    assert len(converged) == 27  # each root once: later runs were deflated by earlier ones
    assert len(distinct_solutions(deflated)) == 27


@pytest.mark.parametrize("executor", ["default", "in-process", "threads", "immediate"])
def test_deflated_batches_of_several_starts_match_the_loop_written_out(executor):
    """With deflation, the starts go in batches of chunk_size; every run of a batch is deflated by
    the distinct converged points of all earlier batches, with its own options. The driver gives
    bit for bit what that loop, written out here, gives (batches of 4, options varying per start)."""
    system = make_quartic(TILTS)
    starts = quartic_starts(14, seed=5)
    options = [NewtonOptions(deflation_shift=10.0, max_iterations=4 + 3 * (k % 4)) for k in range(14)]
    reference, known = [], np.empty((0, 3))
    for first in range(0, 14, 4):
        deflation = known if len(known) else None
        batch = [newton_stationary(system, starts[k], options[k], deflation) for k in range(first, min(first + 4, 14))]
        known = distinct_solutions(batch, known)
        reference += batch
    undeflated = [newton_stationary(system, start, opts) for start, opts in zip(starts, options)]
    assert not same_bits(reference[4:], undeflated[4:])  # the later batches were steered
    assert len({r.status for r in reference}) > 1  # and the options differ in effect
    pool = concurrent.futures.ThreadPoolExecutor(2) if executor == "threads" else None
    chosen = {"default": None, "in-process": restarts.InProcessExecutor(), "threads": pool, "immediate": Immediate()}
    try:
        results = solve_from_starts(
            make_quartic,
            (TILTS,),
            starts,
            options=options,
            executor=chosen[executor],
            chunk_size=4,
            deflate=True,
            progress=False,
        )
    finally:
        if pool is not None:
            pool.shutdown()
    assert same_bits(results, reference)


def test_distinct_solutions_merges_duplicates_and_skips_failures():
    theta = np.array([1.0, 2.0])
    results = [
        NewtonResult(theta, Status.CONVERGED, 3, 0.0, 0.0, 1.0),
        NewtonResult(theta + 1e-9, Status.CONVERGED, 3, 0.0, 0.0, 1.0),
        NewtonResult(theta + 1.0, Status.GRADIENT_FLAT, 3, 1e-7, 0.0, 1.0),
        NewtonResult(-theta, Status.CONVERGED, 3, 0.0, 0.0, 1.0),
    ]
    np.testing.assert_array_equal(distinct_solutions(results), [theta, -theta])
    np.testing.assert_array_equal(distinct_solutions(results, known=[-theta]), [-theta, theta])


# ---------------------------------------------------------------------------- restarts driver


class Immediate:
    """A minimal executor: ``submit`` runs the call at once (no ``concurrent.futures``)."""

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    def submit(self, fn, *args):
        return self.Done(fn(*args))


@pytest.fixture(scope="module")
def determinism_case() -> tuple[np.ndarray, list[NewtonResult]]:
    starts = quartic_starts(40, seed=3)
    system = make_quartic(TILTS)
    return starts, [newton_stationary(system, start) for start in starts]


def test_driver_in_process_matches_direct_runs(determinism_case):
    starts, direct = determinism_case
    one_chunk = solve_from_starts(make_quartic, (TILTS,), starts, chunk_size=40, progress=False)
    assert same_bits(one_chunk, direct)
    generic = solve_from_starts(make_quartic, (TILTS,), starts, executor=Immediate(), chunk_size=6, progress=True)
    assert same_bits(generic, direct)


def test_driver_process_pools_and_chunkings_give_identical_bits(determinism_case):
    starts, direct = determinism_case
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        for chunk_size in (1, 7, 40):
            results = solve_from_starts(
                make_quartic, (TILTS,), starts, executor=pool, chunk_size=chunk_size, progress=False
            )
            assert same_bits(results, direct)
    default_pool = solve_from_starts(make_quartic, (TILTS,), starts, progress=False)
    assert same_bits(default_pool, direct)


def test_default_pool_puts_the_probe_and_the_pooled_runs_back_in_order(determinism_case, monkeypatch):
    """The default executor times starts spread over the list here and pools the others."""
    starts, direct = determinism_case
    monkeypatch.setattr(restarts, "POOL_STARTUP_SECONDS", 0.0)  # always start the pool
    for chunk_size in (1, 8):  # a one-start chunk still times a start after the first
        pooled = solve_from_starts(make_quartic, (TILTS,), starts, chunk_size=chunk_size, progress=False)
        assert same_bits(pooled, direct)


def test_driver_builds_the_system_once_per_worker(tmp_path):
    log = tmp_path / "builds.log"
    starts = quartic_starts(30, seed=4)
    args = (TILTS, str(log))
    for chunk_size in (3, 5):
        solve_from_starts(
            make_logged_quartic,
            args,
            starts,
            executor=Immediate(),
            chunk_size=chunk_size,
            progress=False,
        )
    assert log.read_text().count("built") == 1  # ten then six chunks, one build in this process
    other = tmp_path / "other.log"
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        solve_from_starts(
            make_logged_quartic,
            (TILTS, str(other)),
            starts,
            executor=pool,
            chunk_size=2,
            progress=False,
        )
    assert 1 <= other.read_text().count("built") <= 2  # fifteen chunks on two workers


def test_dask_client_is_submitted_impure():
    calls = []

    class FakeClient(Immediate):
        def submit(self, fn, *args, **kwargs):
            calls.append(kwargs)
            return self.Done(fn(*args))

        def gather(self, futures):
            return [f.result() for f in futures]

        def scheduler_info(self):
            return {}

    solve_from_starts(
        make_quartic,
        (TILTS,),
        quartic_starts(4, seed=6),
        executor=FakeClient(),
        chunk_size=2,
        progress=False,
    )
    assert calls == [{"pure": False}, {"pure": False}]


def test_dask_distributed_gives_identical_bits(determinism_case):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (optional extra 'dask')")
    starts, direct = determinism_case
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        results = solve_from_starts(make_quartic, (TILTS,), starts, executor=client, chunk_size=9, progress=False)
        deflated = solve_from_starts(
            make_quartic,
            (TILTS,),
            starts[:8],
            executor=client,
            chunk_size=4,
            deflate=True,
            progress=False,
        )
    assert same_bits(results, direct)
    in_process = solve_from_starts(
        make_quartic,
        (TILTS,),
        starts[:8],
        executor=Immediate(),
        chunk_size=4,
        deflate=True,
        progress=False,
    )
    assert same_bits(deflated, in_process)


def test_results_pickle_round_trip():
    result = newton_stationary(make_quartic(TILTS), np.zeros(3))
    again = pickle.loads(pickle.dumps(result))
    assert same_bits([again], [result]) and again.status is Status.CONVERGED
    assert Status.CONVERGED == "converged"


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "option, value",
    [
        ("tol", 0.0),
        ("tol", -1e-10),
        ("tol", float("nan")),
        ("max_iterations", -1),
        ("flat_tol", 1e-12),  # below tol
        ("divergence_radius", 0.0),
        ("rcond", 1.0),
        ("armijo", 0.5),
        ("backtrack_factor", 1.0),
        ("max_backtracks", -2),
        ("lm_initial_damping", 0.0),
        ("lm_damping_factor", 1.0),
        ("lm_max_trials", -1),
        ("stall_window", 0),
        ("stall_decrease", 1.0),
        ("deflation_power", 0.0),
        ("deflation_shift", -1.0),
        ("scale", 0.0),
    ],
)
def test_invalid_options_name_the_option_and_value(option, value):
    with pytest.raises(ValueError) as error:
        NewtonOptions(**{option: value})
    message = str(error.value)
    assert option in message and str(value) in message


def test_invalid_option_types():
    with pytest.raises(TypeError, match="max_iterations"):
        NewtonOptions(max_iterations=2.5)
    with pytest.raises(TypeError, match="tol"):
        NewtonOptions(tol="small")


def test_options_are_frozen_and_defaults_documented():
    options = NewtonOptions()
    assert (options.tol, options.max_iterations, options.divergence_radius) == (1e-10, 100, 1e4)
    assert (options.deflation_power, options.deflation_shift) == (2.0, 1.0)
    with pytest.raises(AttributeError):
        options.tol = 1.0


def test_invalid_inputs_are_rejected():
    system = make_quartic(TILTS)
    with pytest.raises(ValueError, match="theta0"):
        newton_stationary(system, np.zeros(2))
    with pytest.raises(ValueError, match="deflation"):
        newton_stationary(system, np.zeros(3), deflation=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="starts"):
        solve_from_starts(make_quartic, (TILTS,), np.zeros(3), progress=False)
    with pytest.raises(TypeError, match="module-level"):
        solve_from_starts(lambda: system, (), np.zeros((2, 3)), progress=False)
    with pytest.raises(ValueError, match="chunk_size"):
        solve_from_starts(make_quartic, (TILTS,), np.zeros((2, 3)), chunk_size=0, progress=False)


def test_system_cache_is_bounded():
    restarts._SYSTEMS.clear()
    for tilt in np.linspace(0.0, 0.5, restarts._SYSTEM_CACHE_SIZE + 3):
        solve_from_starts(make_quartic, ((tilt,),), np.zeros((1, 1)), progress=False)
    assert len(restarts._SYSTEMS) == restarts._SYSTEM_CACHE_SIZE
    assert isinstance(next(reversed(restarts._SYSTEMS.values())), SeparableQuartic)


def test_toy_solutions_are_exact():
    field = TriangularCubicField(0.25)
    np.testing.assert_allclose([field.residual(z) for z in field.zeros()], 0.0, atol=1e-14)
    ray = RayleighQuotient(np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_allclose([ray.residual(p) for p in ray.critical_points()[0]], 0.0, atol=1e-14)
