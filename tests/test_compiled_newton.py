"""Tests of the compiled Newton driver (critpoints.solver.compiled) and its direct solve
(critpoints.solver.dense_solve).

The compiled driver must make the decisions of the interpreted one (critpoints.solver.newton):
the tests solve the same system from the same starts both ways -- a toy's compiled twin
(tests/compiled_toys.py) against the Python toy, the closed-form losses' kernels against
the loss object -- and compare statuses, iterations and points; the toys' exact solutions
check that the compiled runs find every critical point with its index. The direct solve
is checked against LAPACK's own condition estimate and against numpy's solve.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.linalg
from compiled_toys import CAUCHY, EXPLODING, QUARTIC, QUARTIC_1D, ROTATING_HAT, VALLEY, compiled_twin
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_systems import (
    CauchyLoss1D,
    CountingSystem,
    Forwarding,
    Quartic1D,
    RotatingMexicanHat,
    TiltedValley,
    make_quartic,
)

import critpoints
from critpoints.landscape.initialization import initial_points
from critpoints.landscape.system import LossSystem
from critpoints.losses.closed_form import flat_gradient, flat_hessian, flat_rotation_generators, flat_value
from critpoints.solver.compiled import refresh_binding_cache
from critpoints.solver.dense_solve import (
    direct_solution,
    exceeds_shift,
    lu_factor,
    lu_solve,
    one_norm,
    reciprocal_condition,
)
from critpoints.solver.newton import NewtonOptions, Status, newton_runs

TILTS = (0.3, -0.2, 0.1)


def assert_same_runs(compiled, interpreted, atol=1e-12):
    assert [r.status for r in compiled] == [r.status for r in interpreted]
    assert [r.iterations for r in compiled] == [r.iterations for r in interpreted]
    for a, b in zip(compiled, interpreted):
        np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=atol * max(1.0, np.linalg.norm(b.theta)))
        assert a.scale == b.scale
        np.testing.assert_allclose(a.residual_norm, b.residual_norm, rtol=1e-6, atol=1e-14)


# ---------------------------------------------------------------------------- direct solve


def random_matrix(rng, n, decades):
    """A random n x n matrix with singular values spread over ``decades`` orders of magnitude."""
    left, _ = np.linalg.qr(rng.standard_normal((n, n)))
    right, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return left @ np.diag(10.0 ** -rng.uniform(0, decades, n)) @ right


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), decades=st.floats(0, 12), seed=st.integers(0, 2**32 - 1))
def test_lu_solves_and_condition_estimate_match_lapack(n, decades, seed):
    rng = np.random.default_rng(seed)
    matrix, rhs = random_matrix(rng, n, decades), rng.standard_normal(n)
    lu, pivots, info = lu_factor(matrix)
    lapack_lu, lapack_pivots, _ = scipy.linalg.lapack.dgetrf(matrix)
    assert info == 0
    np.testing.assert_array_equal(lu, lapack_lu)
    np.testing.assert_array_equal(pivots - 1, lapack_pivots)
    condition = np.linalg.cond(matrix, 1)
    for transpose, solved in ((False, matrix), (True, matrix.T)):
        x = lu_solve(lu, pivots, rhs, transpose)
        residual = np.linalg.norm(solved @ x - rhs, 1)
        assert residual <= 1e-13 * n * np.linalg.norm(matrix, 1) * np.linalg.norm(x, 1) + 1e-300
    estimate = reciprocal_condition(lu, pivots, one_norm(matrix))
    lapack_estimate, _ = scipy.linalg.lapack.dgecon(lapack_lu, np.linalg.norm(matrix, 1))
    # The same iteration as LAPACK's: equal up to rounding (for matrices without exact
    # ties, which rounding could break either way: continuous random entries here).
    assert estimate == pytest.approx(lapack_estimate, rel=1e-8)
    # Hager's estimate is a lower bound on ||A^{-1}||_1: an upper bound on the reciprocal
    # (numpy's cond, from an explicit inverse, carries a relative error ~ cond * eps <= 1e-4).
    assert estimate >= (1 - 1e-3) / condition


def test_condition_estimate_equals_dgecon_where_higham_s_test_vector_decides():
    """About one small Gaussian matrix in a hundred needs the alternating test vector (the
    power iteration alone then overestimates rcond); the estimate must still be dgecon's."""
    rng = np.random.default_rng(1)
    for _ in range(300):
        matrix = rng.standard_normal((int(rng.integers(3, 7)),) * 2)
        lu, pivots, _ = lu_factor(matrix)
        lapack_lu = scipy.linalg.lapack.dgetrf(matrix)[0]
        lapack_estimate, _ = scipy.linalg.lapack.dgecon(lapack_lu, np.linalg.norm(matrix, 1))
        assert reciprocal_condition(lu, pivots, one_norm(matrix)) == pytest.approx(lapack_estimate, rel=1e-8)


def test_direct_solution_refuses_singular_and_ill_conditioned_matrices():
    rng = np.random.default_rng(0)
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert not direct_solution(singular, np.ones(2), 1e-9)[0]
    ill = random_matrix(rng, 8, 0) @ np.diag([1.0] * 7 + [1e-12])
    assert not direct_solution(ill, np.ones(8), 1e-9)[0]
    well = random_matrix(rng, 8, 2)
    solved, x = direct_solution(well, np.arange(8.0), 1e-9)
    assert solved
    np.testing.assert_allclose(x, np.linalg.solve(well, np.arange(8.0)), rtol=1e-12)
    assert direct_solution(np.zeros((0, 0)), np.zeros(0), 1e-9)[0]
    for entry in (np.nan, np.inf):
        broken = well.copy()
        broken[2, 3] = entry
        assert not direct_solution(broken, np.ones(8), 1e-9)[0]
        assert not direct_solution(well, np.full(8, entry), 1e-9)[0]
        assert not exceeds_shift(np.diag([1.0, entry]), 0.0)
    assert not exceeds_shift(np.eye(2), np.nan)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), shift=st.floats(-2, 2))
def test_positive_definiteness_test_agrees_with_the_eigenvalues(n, seed, shift):
    rng = np.random.default_rng(seed)
    eigenvalues = rng.standard_normal(n)
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    matrix = basis @ np.diag(eigenvalues) @ basis.T
    skew = rng.standard_normal((n, n))
    matrix += 0.5 * (skew - skew.T)  # a skew part, which the test must ignore
    smallest = np.linalg.eigvalsh(0.5 * (matrix + matrix.T)).min()
    if abs(smallest - shift) > 1e-6:
        assert exceeds_shift(matrix, shift) == (smallest > shift)


# ---------------------------------------------------------------------------- toys


def test_compiled_quartic_every_critical_point_found_with_its_index():
    system = compiled_twin(make_quartic(TILTS), QUARTIC, TILTS)
    points, indices = system.critical_points()
    starts = np.random.default_rng(0).uniform(-1.6, 1.6, size=(300, 3))
    found = set()
    for result in newton_runs(system, starts):
        assert result.status == Status.CONVERGED
        distances = np.linalg.norm(points - result.theta, axis=1)
        assert distances.min() < 1e-8
        index = int(np.argmin(distances))
        assert int(np.sum(np.linalg.eigvalsh(system.hessian(result.theta)) < 0)) == indices[index]
        found.add(index)
    assert found == set(range(27))


TOY_CASES = {
    "quartic": (
        lambda: make_quartic(TILTS),
        QUARTIC,
        TILTS,
        np.random.default_rng(1).uniform(-1.6, 1.6, (60, 3)),
        NewtonOptions(),
    ),
    "quartic descending": (
        lambda: make_quartic(TILTS),
        QUARTIC,
        TILTS,
        np.random.default_rng(2).uniform(-1.6, 1.6, (60, 3)),
        NewtonOptions(descent_iterations=20),
    ),
    "gradient-flat valley": (
        lambda: TiltedValley(1e-7, 1e-13),
        VALLEY,
        (1e-7, 1e-13),
        np.array([[1.0, 1.0], [-3.0, 0.2], [0.5, -40.0]]),
        NewtonOptions(),
    ),
    "exactly flat valley": (
        lambda: TiltedValley(1e-7, 0.0),
        VALLEY,
        (1e-7, 0.0),
        np.array([[1.0, 1.0], [-3.0, 0.2], [0.5, -40.0]]),
        NewtonOptions(),
    ),
    "stalled valley": (lambda: TiltedValley(0.1), VALLEY, (0.1, 0.0), np.array([[1.0, 1.0]]), NewtonOptions()),
    "diverging": (CauchyLoss1D, CAUCHY, (), np.array([[3.0], [0.5], [-0.9]]), NewtonOptions()),
    "max iterations": (Quartic1D, QUARTIC_1D, (), np.array([[1.0], [-2.0]]), NewtonOptions(max_iterations=5)),
    "creeping": (
        Quartic1D,
        QUARTIC_1D,
        (),
        np.array([[1.0], [0.01]]),
        NewtonOptions(stall_window=1, stall_decrease=0.8),
    ),
    "fixed scale": (Quartic1D, QUARTIC_1D, (), np.array([[1.0]]), NewtonOptions(scale=1e3)),
    "null directions": (
        RotatingMexicanHat,
        ROTATING_HAT,
        (),
        np.random.default_rng(7).uniform(-2, 2, (40, 2)),
        NewtonOptions(),
    ),
}


@pytest.mark.parametrize("case", sorted(TOY_CASES))
def test_compiled_toys_make_the_interpreted_decisions(case):
    make, kind, parameters, starts, options = TOY_CASES[case]
    compiled = newton_runs(compiled_twin(make(), kind, parameters), starts, options)
    interpreted = newton_runs(make(), starts, options)
    assert_same_runs(compiled, interpreted)


def test_statuses_of_the_compiled_driver():
    flat = newton_runs(compiled_twin(TiltedValley(1e-7, 1e-13), VALLEY, (1e-7, 1e-13)), np.array([[1.0, 1.0]]))[0]
    assert flat.status == Status.GRADIENT_FLAT and flat.residual_norm == pytest.approx(1e-7, rel=1e-4)
    runaway, inside = newton_runs(compiled_twin(CauchyLoss1D(), CAUCHY), np.array([[3.0], [0.5]]))
    assert runaway.status == Status.DIVERGED and abs(runaway.theta[0]) > NewtonOptions().divergence_radius
    assert inside.status == Status.CONVERGED and abs(inside.theta[0]) < 1e-10
    capped = newton_runs(compiled_twin(Quartic1D(), QUARTIC_1D), np.array([[1.0]]), NewtonOptions(max_iterations=5))[0]
    assert capped.status == Status.MAX_ITERATIONS and capped.iterations == 5
    creeping = newton_runs(
        compiled_twin(Quartic1D(), QUARTIC_1D), np.array([[1.0]]), NewtonOptions(stall_window=1, stall_decrease=0.8)
    )[0]
    assert creeping.status == Status.STALLED and creeping.iterations == 1
    exploding = newton_runs(compiled_twin(Quartic1D(), EXPLODING), np.array([[1.0]]))[0]
    assert exploding.status == Status.DIVERGED


def test_overflowing_quotient_is_diverged_on_both_paths():
    """Far out (||H|| ~ 1e309 after the lift) the quotient Jacobian overflows: the run has
    diverged, on both paths, and the other runs of the batch are unaffected."""
    starts = np.array([[0.5, 0.5], [1e77, 0.0]])
    for options in (NewtonOptions(), NewtonOptions(descent_iterations=5)):
        compiled = newton_runs(compiled_twin(RotatingMexicanHat(), ROTATING_HAT), starts, options)
        interpreted = newton_runs(RotatingMexicanHat(), starts, options)
        assert [r.status for r in compiled] == [r.status for r in interpreted] == [Status.CONVERGED, Status.DIVERGED]


def test_compiled_runs_call_no_python_and_deflated_runs_fall_back():
    counting = compiled_twin(CountingSystem(make_quartic(TILTS)), QUARTIC, TILTS)
    results = newton_runs(counting, np.random.default_rng(3).uniform(-1.6, 1.6, (5, 3)))
    assert all(r.converged for r in results)
    assert counting.calls == {"value": 0, "residual": 0, "residual_jacobian": 0}
    deflated = newton_runs(counting, np.array([[0.9, 0.9, 0.9]]), deflation=results[0].theta[None, :])
    assert deflated[0].status in set(Status) and counting.calls["residual"] > 0


def test_compiled_kernels_of_the_wrong_type_are_refused():
    system = make_quartic(TILTS)
    system.compiled_kernels = "kernels"
    with pytest.raises(TypeError, match="compiled_kernels must be a CompiledKernels or None"):
        newton_runs(system, np.zeros((1, 3)))


def test_binding_cache_is_flushed_when_a_module_compiled_into_it_changes(tmp_path):
    class Cache:
        cache_path = str(tmp_path)
        flushes = 0

        def flush(self):
            self.flushes += 1

    kernels = tmp_path / "kernels.py"
    kernels.write_text("x = 1\n")
    module = types.ModuleType("kernels")
    module.__file__ = str(kernels)
    binding = types.SimpleNamespace(_cache=Cache(), __module__="bindings", __name__="newton")
    refresh_binding_cache(binding, [module])
    assert binding._cache.flushes == 1  # no stamp yet
    refresh_binding_cache(binding, [module])
    assert binding._cache.flushes == 1  # unchanged
    kernels.write_text("x = 22\n")
    refresh_binding_cache(binding, [module])
    assert binding._cache.flushes == 2
    refresh_binding_cache(types.SimpleNamespace(), [module])  # no file cache: nothing to do


# ---------------------------------------------------------------------------- closed-form losses


def linear_setting(loss, p=5, m=3, **overrides):
    arguments = dict(
        p=p,
        d=p,
        m=m,
        loss=loss,
        dictionary=("random", 1),
        noise=0.1,
        latent=("fixed_count", 2, 1),
        augmentation=("independent_mask", 0.5),
    )
    arguments.update(overrides)
    return critpoints.Setting(**arguments)


@pytest.mark.parametrize("loss", ["spectral", "ncl_squared"])
def test_flat_kernels_equal_the_loss_object(loss):
    population = critpoints.population_loss(linear_setting(loss))
    data = population.flat_kernel_data
    rng = np.random.default_rng(4)
    for theta in rng.standard_normal((5, population.n_params)):
        assert flat_value(theta, data) == pytest.approx(population.value(theta), rel=1e-13)
        np.testing.assert_allclose(flat_gradient(theta, data), population.euclidean_gradient(theta), rtol=1e-13)
        np.testing.assert_allclose(flat_hessian(theta, data), population.euclidean_hessian(theta), rtol=1e-13)
        np.testing.assert_array_equal(flat_rotation_generators(theta, data), population.symmetry_generators(theta))


def test_compiled_kernels_only_where_they_apply():
    assert LossSystem(critpoints.population_loss(linear_setting("spectral"))).compiled_kernels is not None
    for setting in (
        linear_setting("spectral", constraint="unit_rows"),
        linear_setting("ncl_squared", constraint="unit_columns"),
        linear_setting("spectral", p=3, m=2, expectation="exact_enumeration", noise=0.0, dictionary="identity"),
    ):
        population = critpoints.population_loss(setting)
        assert population.flat_kernel_data is None
        assert LossSystem(population).compiled_kernels is None


@pytest.mark.parametrize("loss", ["spectral", "ncl_squared"])
def test_closed_form_runs_compiled_and_interpreted_agree(loss):
    """Descending runs from Gaussian starts, and Newton runs from near their end points
    (Newton from far away is chaotic: rounding-level differences pick other basins)."""
    system = LossSystem(critpoints.population_loss(linear_setting(loss, p=6, m=6)))
    starts = initial_points(system.loss, 12, np.random.default_rng(5), "gaussian")
    options = NewtonOptions(descent_iterations=50)
    compiled = newton_runs(system, starts, options)
    assert_same_runs(compiled, newton_runs(Forwarding(system), starts, options), atol=1e-9)
    near = np.array([r.theta for r in compiled]) + 1e-3 * np.random.default_rng(6).standard_normal(starts.shape)
    assert_same_runs(newton_runs(system, near), newton_runs(Forwarding(system), near), atol=1e-9)
