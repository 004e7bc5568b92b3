"""A check that the stationarity threshold can tell stationary points from the starts.

Newton runs and descent runs stop as converged when ||grad L|| <= tol * max(1, |L(theta_0)|)
(the Riemannian gradient; the projected field for ``ncl_predictor``). The test tells
stationary points from the others only where the gradient at a generic point is much larger
than that threshold. Where the loss is flat at working precision — InfoNCE at a small
temperature, where the softmax over negatives saturates, L ~ 1/tau and exp(-gap/tau) makes the
gradient vanish to rounding; or a full-dimensional set of minima (derivations/CLAIMS.md,
claim 2) — every start passes the test where it begins and the table lists the starts.
:func:`warn_if_threshold_is_coarse` evaluates the gradient at a few generic points and says so.
"""

from __future__ import annotations

import warnings

import numpy as np

from critpoints.landscape.initialization import initial_points
from critpoints.landscape.system import LossSystem
from critpoints.losses.population_loss import PopulationLoss

#: The threshold must be this many times smaller than the typical gradient at the starts.
MARGIN = 1e3

#: Generic points at which the gradient is evaluated.
SAMPLE = 4


def threshold_ratio(loss: PopulationLoss, tol: float, scale: float | None = None) -> float:
    """Median over a few generic points of (tol * scale) / ||grad L(theta)||.

    The points are :data:`SAMPLE` Gaussian starts of a fixed generator (the loss's generic
    gradient, not that of the run's own starts, which may sit near a minimum or on a flat
    region on purpose); points where the gradient is exactly zero (exactly stationary, such
    as a region where every neuron is dead) are left out. ``scale`` is the fixed loss scale
    of the run, or None for max(1, |L(theta)|) per point. Returns 0 when every point is
    exactly stationary.
    """
    system = LossSystem(loss)
    ratios = []
    for theta in initial_points(loss, SAMPLE, np.random.default_rng(0), "gaussian"):
        gradient = float(np.linalg.norm(system.residual(theta)))
        if gradient > 0:
            threshold = tol * (scale if scale is not None else max(1.0, abs(system.value(theta))))
            ratios.append(threshold / gradient)
    return float(np.median(ratios)) if ratios else 0.0


def warn_if_threshold_is_coarse(
    loss: PopulationLoss, tol: float, scale: float | None = None, stacklevel: int = 1
) -> None:
    """Warn (UserWarning) when tol * scale is within :data:`MARGIN` of the loss's generic gradient norm.

    Parameters
    ----------
    loss : PopulationLoss
    tol : float
        The relative stationarity tolerance of the run.
    scale : float, optional
        A fixed loss scale (NewtonOptions.scale); None: max(1, |L(theta_0)|) per start.
    stacklevel : int
        Passed to warnings.warn, counted from the caller of this function.
    """
    ratio = threshold_ratio(loss, tol, scale)
    if ratio * MARGIN > 1.0:
        warnings.warn(
            f"the gradient of this loss ({loss.setting.loss}) at generic points is only {1.0 / ratio:.1e} times the "
            f"stationarity threshold tol * max(1, |L|) (tol={tol:g}): where it is that flat, runs stop where they "
            "start and are listed as stationary (degenerate) points. Expected on a flat set of minima; for InfoNCE "
            "a larger temperature resolves the landscape",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
