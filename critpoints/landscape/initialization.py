"""Random starts for the critical-point search (one seeded generator for all of them).

Families (the ``init`` argument of ``enumerate_critical_points``):

* ``"gaussian"`` or ``("gaussian", scale)``: every entry of every block i.i.d. N(0, scale^2)
  (default scale 1/sqrt(p)), then projected onto the constraint manifold;
* ``("warm_start", c)``: the paper's warm start W_0 = M^T + noise with i.i.d. N(0, p^(-c))
  entries (variance p^(-c)); when m > d the rows are atoms drawn with replacement, when m < d
  a random subset of atoms; the target encoder gets its own noise, biases start at 0 and P
  at the identity;
* ``"uniform"``: uniform on the constraint manifold (each sphere's coordinates a normalised
  Gaussian vector; free coordinates N(0, 1/p));
* an array of shape (n_params,) or (R, n_params): user-supplied starts (projected).
"""

from __future__ import annotations

import numpy as np

from critpoints import _validation as check
from critpoints.losses.population_loss import PopulationLoss

INIT_FAMILIES = ("gaussian", "warm_start", "uniform")


def _gaussian(loss: PopulationLoss, count: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    return scale * rng.standard_normal((count, loss.n_params))


def _warm_start(loss: PopulationLoss, count: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    setting = loss.setting
    atoms = setting.dictionary_matrix().T  # d x p, rows are atoms
    noise_sd = setting.p ** (-exponent / 2.0)
    starts = np.zeros((count, loss.n_params))
    for row in range(count):
        if setting.m > setting.d:
            chosen = rng.integers(0, setting.d, size=setting.m)
        elif setting.m < setting.d:
            chosen = rng.choice(setting.d, size=setting.m, replace=False)
        else:
            chosen = np.arange(setting.d)
        blocks = {}
        for name, shape in loss.layout.shapes.items():
            if name in ("W", "W_t"):
                blocks[name] = atoms[chosen] + noise_sd * rng.standard_normal(shape)
            elif name == "P":
                blocks[name] = np.eye(setting.m)
            else:
                blocks[name] = np.zeros(shape)
        starts[row] = loss.pack(**blocks)
    return starts


def initial_points(loss: PopulationLoss, count: int, rng: np.random.Generator, init: object = "gaussian") -> np.ndarray:
    """``count`` starts (rows) for ``loss`` from the family ``init``, on the constraint manifold."""
    count = check.integer("n_restarts", count, minimum=1)
    if isinstance(init, (np.ndarray, list)):
        starts = np.atleast_2d(check.finite_array("init", init))
        if starts.shape[1] != loss.n_params:
            raise ValueError(
                f"init arrays must have {loss.n_params} columns (one theta per row), got shape {starts.shape}"
            )
        starts = np.array(starts[np.arange(count) % len(starts)])
    else:
        name, args = check.short_form("init", init, INIT_FAMILIES, "an array of starts")
        if name == "gaussian":
            scale = check.real("init scale", args[0], low=0.0, low_open=True) if args else loss.setting.p**-0.5
            starts = _gaussian(loss, count, rng, scale)
        elif name == "warm_start":
            if len(args) != 1:
                raise ValueError(f"init must be ('warm_start', c), got {init!r}")
            starts = _warm_start(loss, count, rng, check.real("warm-start exponent c", args[0], low=0.0))
        else:
            starts = _gaussian(loss, count, rng, loss.setting.p**-0.5)
    return np.array([loss.manifold.project(start) for start in starts])
