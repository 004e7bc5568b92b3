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
* an array of shape (n_params,) or (R, n_params): user-supplied starts (projected); R must
  be 1 (the start repeated) or the number of starts.
"""

from __future__ import annotations

from typing import Any

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


def check_init(init: object, count: int) -> tuple[Any, ...] | np.ndarray:
    """The start family ``init`` checked for ``count`` starts, before any work.

    Returns ``("gaussian", scale)`` (``scale`` None for the default), ``("warm_start", c)``,
    ``("uniform",)``, or the user's starts as a float array of shape (R, n) with R = 1 or
    R = ``count``. Raises ValueError / TypeError naming ``init`` for anything else: an
    unknown family, extra or bad parameters, non-finite or empty arrays, or a number of
    rows other than 1 or ``n_restarts``.
    """
    count = check.integer("n_restarts", count, minimum=1)
    if isinstance(init, (np.ndarray, list)):
        starts = np.atleast_2d(check.finite_array("init", init))
        if starts.ndim != 2 or starts.size == 0:
            raise ValueError(
                f"init arrays must hold at least one start, one theta per row (shape (R, n_params)), got shape "
                f"{np.shape(init)}"
            )
        if len(starts) not in (1, count):
            raise ValueError(
                f"init has {len(starts)} rows (starts) but n_restarts={count}; pass n_restarts={len(starts)} "
                "to run from each row once, or a single row to repeat it"
            )
        return starts
    name, args = check.short_form("init", init, INIT_FAMILIES, "an array of starts")
    if name == "gaussian":
        if len(args) > 1:
            raise ValueError(f"init must be 'gaussian' or ('gaussian', scale), got {init!r}")
        if not args or args[0] is None:  # None: the default scale (check_init's own output reads back)
            return ("gaussian", None)
        return ("gaussian", check.real("init scale", args[0], low=0.0, low_open=True))
    if name == "warm_start":
        if len(args) != 1:
            raise ValueError(f"init must be ('warm_start', c), got {init!r}")
        return ("warm_start", check.real("warm-start exponent c", args[0], low=0.0))
    if args:
        raise ValueError(f"init 'uniform' takes no parameters, got {init!r}")
    return ("uniform",)


def describe_init(init: tuple[Any, ...] | np.ndarray) -> object:
    """``init`` as a result's metadata records it: the short form, or how many user rows."""
    if isinstance(init, np.ndarray):
        return f"user arrays ({len(init)} rows)"
    return init[0] if init[1:] in ((), (None,)) else list(init)


def initial_points(loss: PopulationLoss, count: int, rng: np.random.Generator, init: object = "gaussian") -> np.ndarray:
    """``count`` starts (rows) for ``loss`` from the family ``init`` (see :func:`check_init`),
    on the constraint manifold."""
    init = check_init(init, count)
    if isinstance(init, np.ndarray):
        if init.shape[1] != loss.n_params:
            raise ValueError(
                f"init arrays must have {loss.n_params} columns (one theta per row), got shape {init.shape}"
            )
        starts = np.repeat(init, count, axis=0) if len(init) == 1 else np.array(init)
    elif init[0] == "gaussian":
        starts = _gaussian(loss, count, rng, loss.setting.p**-0.5 if init[1] is None else init[1])
    elif init[0] == "warm_start":
        starts = _warm_start(loss, count, rng, init[1])
    else:
        starts = _gaussian(loss, count, rng, loss.setting.p**-0.5)
    return np.array([loss.manifold.project(start) for start in starts])
