"""Finite measures over augmented views: the common input of the enumeration and
sample-average evaluators.

A population loss of derivations/MODEL.md §4 needs three distributions:

* the joint law of the two views ``(x1, x2)`` of one input (the *pairs*),
* the law of the anchor view ``x1`` alone (the outer expectation of InfoNCE and the
  first factor of the spectral repulsion term),
* the law of a negative ``x'``, a view of an independent input (the *negatives*).

When the view distribution has finite support (``exact_enumeration``) all three are
finite weighted sums; a fixed draw (``sample_average``) is the same object with equal
weights. Expectations are then ``E[g(x1, x2)] = sum_n pair_weight[n] g(x1[n], x2[n])`` and
``E[h(x1, x')] = sum_a sum_j anchor_weight[a] negative_weight[j] h(anchor[a], negative[j])``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class FiniteMeasure(NamedTuple):
    """Weighted point sets standing in for the view distributions.

    Attributes
    ----------
    x1, x2 : ndarray, shape (N, p)
        Support of the joint law of the two views of one input.
    pair_weight : ndarray, shape (N,)
        Probabilities of the pairs (non-negative, summing to one).
    anchor : ndarray, shape (K, p)
        Support of the law of the first view ``x1`` alone.
    anchor_weight : ndarray, shape (K,)
    negative : ndarray, shape (J, p)
        Support of the law of a negative ``x'`` (a view of an independent input).
    negative_weight : ndarray, shape (J,)
    empirical : bool
        True for a fixed sample (``sample_average``): its expectations are empirical
        averages, never population values.
    """

    x1: np.ndarray
    x2: np.ndarray
    pair_weight: np.ndarray
    anchor: np.ndarray
    anchor_weight: np.ndarray
    negative: np.ndarray
    negative_weight: np.ndarray
    empirical: bool = False

    @property
    def size(self) -> int:
        """Number of support points over which a loss is summed (pairs plus anchors)."""
        return int(self.pair_weight.shape[0] + self.anchor_weight.shape[0])
