"""Finite view laws: exact enumeration of the support, and fixed samples.

For M = I and sigma = 0 the input x = z takes finitely many values, and a mask acts on x
only through its entries on the support of z (a masked zero is still zero). So for a code
z with k nonzeros, the pair (x1, x2) takes at most (number of mask-pair patterns on k
coordinates) values, whatever p is: 4^k for independent masks, 2^k for complementary
ones. Summing over codes and merging equal pairs gives the exact joint law of the views.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from critpoints.data.finite_measure import FiniteMeasure

if TYPE_CHECKING:
    from critpoints.model.setting import Setting


def _merge(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge equal rows of ``points``, adding their weights; rows in lexicographic order."""
    unique, inverse = np.unique(points, axis=0, return_inverse=True)
    return unique, np.bincount(inverse.ravel(), weights=weights, minlength=len(unique))


class ViewPatterns(NamedTuple):
    """The views of one code z: every mask pattern on its support, with probabilities.

    ``pairs`` (T, 2p) holds (x1, x2) side by side, ``singles`` (S, p) the values of one view;
    the weights are P(z) P(pattern), floats or ``Fraction`` objects.
    """

    pairs: np.ndarray
    pair_weights: np.ndarray
    singles: np.ndarray
    single_weights: np.ndarray


def view_patterns(setting: Setting, exact: bool = False) -> Iterator[ViewPatterns]:
    """For every code z of the latent support, the views D z of every mask pattern.

    Requires M = I and sigma = 0 (then x = z). Equal views of different codes are not
    merged here. ``exact=True`` gives the probabilities as ``Fraction`` objects (the float
    parameters taken as the dyadic rationals they are).

    Raises
    ------
    ValueError
        If the setting's noise is not 0 or its dictionary is not the identity.
    """
    if setting.noise != 0:
        raise ValueError(f"the finite view law needs noise=0, got noise={setting.noise}")
    if not setting.dictionary.is_identity(setting.p, setting.d):
        raise ValueError("the finite view law needs the identity dictionary (p = d, M = I)")
    codes, code_weights = setting.latent.support(setting.d, exact)
    for code, code_weight in zip(codes, code_weights):
        support = np.flatnonzero(code)
        values = code[support]
        first, second, mask_weight = setting.augmentation.pair_patterns(len(support), exact)
        pairs = np.zeros((len(mask_weight), 2 * setting.p))
        pairs[:, support] = first * values
        pairs[:, setting.p + support] = second * values
        single, single_weight = setting.augmentation.single_patterns(len(support), exact)
        singles = np.zeros((len(single_weight), setting.p))
        singles[:, support] = single * values
        # + 0.0 turns -0.0 into 0.0, so that equal views compare equal byte for byte
        yield ViewPatterns(pairs + 0.0, code_weight * mask_weight, singles + 0.0, code_weight * single_weight)


def exact_view_measure(setting: Setting) -> FiniteMeasure:
    """The exact joint law of (x1, x2), and the law of one view, as a finite measure.

    Requires M = I and sigma = 0 (a ValueError otherwise). The anchors and the negatives
    are both the law of one view: with these augmentations x1 and x2 have the same law.
    """
    patterns = list(view_patterns(setting))
    pairs, pair_weight = _merge(
        np.concatenate([pattern.pairs for pattern in patterns]),
        np.concatenate([pattern.pair_weights for pattern in patterns]),
    )
    singles, single_weight = _merge(
        np.concatenate([pattern.singles for pattern in patterns]),
        np.concatenate([pattern.single_weights for pattern in patterns]),
    )
    return FiniteMeasure(
        x1=pairs[:, : setting.p],
        x2=pairs[:, setting.p :],
        pair_weight=pair_weight,
        anchor=singles,
        anchor_weight=single_weight,
        negative=singles,
        negative_weight=single_weight,
        empirical=False,
    )


class ViewSample(NamedTuple):
    """A draw of n independent tuples (z, x, x1, x2, x') (arrays with n rows).

    ``negative`` is the first view of an independent input (z', xi', D').
    """

    z: np.ndarray
    x: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    negative: np.ndarray


def _draw_inputs(setting: Setting, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n codes z and inputs x = M z + xi."""
    z = setting.latent.sample(rng, n, setting.d)
    x = z @ setting.dictionary_matrix().T
    if setting.noise > 0:
        x = x + setting.noise * rng.standard_normal(x.shape)
    return z, x


def sample_views(setting: Setting, n: int, seed: int | np.random.Generator) -> ViewSample:
    """Draw n tuples (z, x, x1, x2, x') from the setting's data model and augmentation."""
    rng = np.random.default_rng(seed)
    z, x = _draw_inputs(setting, rng, n)
    first, second = setting.augmentation.sample(rng, n, setting.p)
    _, other = _draw_inputs(setting, rng, n)
    negative_mask, _ = setting.augmentation.sample(rng, n, setting.p)
    return ViewSample(z=z, x=x, x1=first * x, x2=second * x, negative=negative_mask * other)


def sample_view_measure(setting: Setting, n: int, seed: int) -> FiniteMeasure:
    """The empirical measure of a fixed draw of n tuples (z, D1, D2, x'), weights 1/n.

    Anchors are the drawn first views, negatives the drawn x'; the repulsion terms then
    average over all n^2 (anchor, negative) combinations of the draw.
    """
    sample = sample_views(setting, n, seed)
    weight = np.full(n, 1.0 / n)
    return FiniteMeasure(
        x1=sample.x1,
        x2=sample.x2,
        pair_weight=weight,
        anchor=sample.x1,
        anchor_weight=weight,
        negative=sample.negative,
        negative_weight=weight.copy(),
        empirical=True,
    )
