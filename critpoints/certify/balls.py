"""Ball arithmetic (python-flint's ``arb`` / ``arb_mat``, the optional ``certify`` extra).

Floats given to these helpers are taken as the exact dyadic rationals they store; rationals
are enclosed in tight balls at the working precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

_EXTRA_MESSAGE = (
    "certification needs python-flint (ball arithmetic); install the optional extra: "
    "pip install 'critpoints[certify]'  (or: pip install 'python-flint>=0.6')"
)


def require_flint() -> Any:
    """Import python-flint lazily.

    Returns
    -------
    module
        The ``flint`` module.

    Raises
    ------
    ImportError
        Naming the ``certify`` extra, if python-flint is not installed.
    """
    try:
        import flint
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_EXTRA_MESSAGE) from error
    return flint


def ball(value: float, radius: float = 0.0) -> Any:
    """The float ``value`` (exact) as a ball of the given radius."""
    arb = require_flint().arb
    return arb(float(value), float(radius)) if radius > 0 else arb(float(value))


def rational_ball(value: Fraction) -> Any:
    """A ball containing the rational ``value`` (tight at the working precision)."""
    flint = require_flint()
    return flint.arb(flint.fmpq(value.numerator, value.denominator))


def arb_matrix(array: np.ndarray) -> Any:
    """An arb_mat with the float entries of ``array``, taken as exact."""
    flint = require_flint()
    array = np.asarray(array, dtype=np.float64)
    rows, cols = array.shape
    return flint.arb_mat([[ball(x) for x in row] for row in array]) if rows and cols else flint.arb_mat(rows, cols)


def rational_matrix(entries: Sequence[Sequence[Fraction]]) -> Any:
    """An arb_mat enclosing a matrix of rationals."""
    return require_flint().arb_mat([[rational_ball(x) for x in row] for row in entries])


def midpoint(matrix: Any) -> np.ndarray:
    """Midpoints of an arb_mat as a float array."""
    return np.array([[float(x.mid()) for x in row] for row in matrix.tolist()], dtype=np.float64).reshape(
        matrix.nrows(), matrix.ncols()
    )


def ball_column(values: Sequence[Any]) -> Any:
    flint = require_flint()
    return flint.arb_mat([[v] for v in values]) if len(values) else flint.arb_mat(0, 1)


def norm_below(matrix: Any, bound: float) -> bool:
    """True if the infinity norm of every matrix in the interval matrix is certainly < bound."""
    for row in matrix.tolist():
        total = ball(0.0)
        for entry in row:
            total += abs(entry)
        if not total < bound:
            return False
    return True


def nonsingular(matrix: Any) -> bool:
    """Certify every matrix in the interval matrix nonsingular: |I - R A|_inf < 1, R = mid(A)^-1."""
    flint = require_flint()
    middle = midpoint(matrix)
    try:
        inverse = np.linalg.inv(middle)
    except np.linalg.LinAlgError:
        return False
    if not np.all(np.isfinite(inverse)):
        return False
    n = matrix.nrows()
    residual = flint.arb_mat(np.eye(n).tolist()) - arb_matrix(inverse) * matrix
    return norm_below(residual, 1.0)
