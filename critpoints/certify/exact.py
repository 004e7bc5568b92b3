"""Exact data of a setting for the certificates: view moments and the finite view law in rationals.

The dictionary, the noise level and the drop probability are floats, taken as the exact
dyadic rationals they store; the latent moments and the mask identities are the generated
rational functions of derivations/moments.py (critpoints.certify._generated.exact_moments).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from critpoints.certify.balls import rational_matrix
from critpoints.data.view_laws import view_patterns

if TYPE_CHECKING:
    from critpoints.model.setting import Setting


def _exact_product(left: list[list[Fraction]], right: list[list[Fraction]]) -> list[list[Fraction]]:
    """The matrix product of two matrices of rationals."""
    return [[sum((x * y for x, y in zip(row, column)), Fraction(0)) for column in zip(*right)] for row in left]


def _exact_latent_moment(setting: Setting) -> list[list[Fraction]]:
    """Lambda = E[z z^T] from the generated ``latent_moment_<family>_diagonal / _off_diagonal``."""
    from critpoints.certify._generated import exact_moments as formulas

    latent, d = setting.latent, setting.d
    parameters = [getattr(latent, name) for name in formulas.LATENT_PARAMETERS[latent.name]]
    diagonal = getattr(formulas, f"latent_moment_{latent.name}_diagonal")(d, *parameters)
    if d == 1:
        return [[diagonal]]
    off = getattr(formulas, f"latent_moment_{latent.name}_off_diagonal")(d, *parameters)
    return [[diagonal if i == j else off for j in range(d)] for i in range(d)]


def _exact_input_moment(setting: Setting) -> list[list[Fraction]]:
    """Sigma = E[x x^T] = M Lambda M^T + sigma^2 I (x = M z + xi), the floats M, sigma as exact rationals."""
    dictionary = [[Fraction(float(x)) for x in row] for row in setting.dictionary_matrix()]
    transpose = [list(column) for column in zip(*dictionary)]
    sigma = _exact_product(_exact_product(dictionary, _exact_latent_moment(setting)), transpose)
    noise = Fraction(float(setting.noise))
    for a in range(setting.p):
        sigma[a][a] += noise * noise
    return sigma


def exact_view_moments(setting: Setting) -> tuple[list[list[Fraction]], list[list[Fraction]], list[list[Fraction]]]:
    """The view moments (E[x1 x1^T], E[x1 x2^T], E[x2 x2^T]) of a setting, in exact arithmetic.

    Parameters
    ----------
    setting : Setting
        Its dictionary entries, noise level and drop probability are floats, taken as the
        exact dyadic rationals they store.

    Returns
    -------
    (C11, C12, C22) : three p x p lists of lists of Fraction
        Entry (a, b) of a view moment is the mask identity of that position (diagonal or
        not) applied to Sigma_ab, E[D Sigma D']_ab (derivations/moments.py, generated
        ``exact_moments``), with rho = 1 - q the keep probability of an independent mask.
        C22 = C11: both views have the same law.
    """
    from critpoints.certify._generated import exact_moments as formulas

    sigma = _exact_input_moment(setting)
    augmentation = setting.augmentation
    rho = 1 - Fraction(float(getattr(augmentation, "q", 0.0)))  # unused by the complementary mask
    same_diagonal, same_off, cross_diagonal, cross_off = formulas.MASK_IDENTITIES[augmentation.name]

    def masked(on_diagonal: Callable, off_diagonal: Callable) -> list[list[Fraction]]:
        return [
            [on_diagonal(x, rho) if a == c else off_diagonal(x, rho) for c, x in enumerate(row)]
            for a, row in enumerate(sigma)
        ]

    same = masked(same_diagonal, same_off)
    return same, masked(cross_diagonal, cross_off), [row[:] for row in same]


def moment_enclosures(setting: Setting) -> tuple[Any, Any, Any]:
    """Balls (arb_mat) containing the exact view moments (C11, C12, C22) of :func:`exact_view_moments`."""
    return tuple(rational_matrix(moment) for moment in exact_view_moments(setting))


class ExactViewLaw(NamedTuple):
    """The finite law of the views of an ``exact_enumeration`` setting, with exact probabilities.

    Attributes
    ----------
    views : ndarray, shape (V, p)
        The distinct views (entries 0, +-1 or +-2: exact).
    pairs : list of (int, int, Fraction)
        (index of x1, index of x2, probability) of the joint law of the two views.
    singles : list of (int, Fraction)
        (index, probability) of the law of one view: the anchors, and the negatives.
    """

    views: np.ndarray
    pairs: list
    singles: list


def exact_view_law(setting: Setting) -> ExactViewLaw:
    """The exact joint law of (x1, x2) and the law of one view, with rational probabilities.

    The enumeration of :func:`critpoints.data.view_laws.exact_view_measure`
    (:func:`~critpoints.data.view_laws.view_patterns`: M = I, sigma = 0, for every code z and
    every mask pattern on its support, the views D z) with exact probabilities
    P(z) P(pattern), equal views merged.

    Parameters
    ----------
    setting : Setting
        An ``exact_enumeration`` setting.

    Returns
    -------
    ExactViewLaw
    """
    index: dict[bytes, int] = {}
    views: list[np.ndarray] = []
    pairs: dict[tuple[int, int], Fraction] = defaultdict(Fraction)
    singles: dict[int, Fraction] = defaultdict(Fraction)

    def view(x: np.ndarray) -> int:
        key = x.tobytes()
        if key not in index:
            index[key] = len(views)
            views.append(x)
        return index[key]

    for patterns in view_patterns(setting, exact=True):
        for pair, weight in zip(patterns.pairs, patterns.pair_weights):
            pairs[(view(pair[: setting.p]), view(pair[setting.p :]))] += weight
        for single, weight in zip(patterns.singles, patterns.single_weights):
            singles[view(single)] += weight
    return ExactViewLaw(
        views=np.array(views),
        pairs=[(i, j, w) for (i, j), w in pairs.items() if w],
        singles=[(i, w) for i, w in singles.items() if w],
    )
