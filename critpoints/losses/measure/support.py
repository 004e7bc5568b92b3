"""The distinct views of a finite measure and how they are coupled (index bookkeeping).

Equal support points are merged (weights added) and zero-weight points dropped, which
changes nothing but the rounding of the sums. Every view is encoded once per encoder; the
kernels address views, pairs, anchors and negatives by their indices here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from critpoints import _validation as check
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.losses.encoder import Slots


class Couplings(NamedTuple):
    """Couplings (row position, column position, weight), sorted by row then column.

    Positions index the distinct row views and column views of the term. The couplings of
    row r are ``row_ptr[r]:row_ptr[r+1]``; those of column c are
    ``col_order[col_ptr[c]:col_ptr[c+1]]``.
    """

    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray
    row_ptr: np.ndarray
    col_ptr: np.ndarray
    col_order: np.ndarray

    @classmethod
    def from_lists(cls, rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, n_rows: int, n_cols: int) -> Couplings:
        """Merge repeated (row, col) couplings (adding weights), drop zero weights, sort."""
        keep = weight > 0
        key = rows[keep].astype(np.int64) * n_cols + cols[keep].astype(np.int64)
        unique, inverse = np.unique(key, return_inverse=True)
        merged = np.bincount(inverse.ravel(), weights=weight[keep], minlength=len(unique))
        rows, cols = unique // n_cols, unique % n_cols
        row_ptr = np.searchsorted(rows, np.arange(n_rows + 1)).astype(np.int64)
        col_order = np.argsort(cols, kind="stable").astype(np.int64)
        col_ptr = np.searchsorted(cols[col_order], np.arange(n_cols + 1)).astype(np.int64)
        return cls(rows.astype(np.int64), cols.astype(np.int64), merged, row_ptr, col_ptr, col_order)

    def transposed(self) -> Couplings:
        """The same couplings with rows and columns exchanged."""
        n_rows, n_cols = len(self.row_ptr) - 1, len(self.col_ptr) - 1
        return Couplings.from_lists(self.cols, self.rows, self.weight, n_cols, n_rows)


class ViewPool(NamedTuple):
    """The anchors and the negatives of infonce as one set of views.

    ``views``: their indices in :attr:`Support.views` (each once); ``anchor`` /
    ``negative``: the position in ``views`` of each anchor / negative. The exact
    enumeration has the same views (and weights) for both.
    """

    views: np.ndarray
    anchor: np.ndarray
    negative: np.ndarray

    @classmethod
    def of(cls, anchor_views: np.ndarray, negative_views: np.ndarray) -> ViewPool:
        """The pool of the anchors' and negatives' view indices, each distinct view once."""
        views, inverse = np.unique(np.concatenate([anchor_views, negative_views]), return_inverse=True)
        inverse = inverse.ravel().astype(np.int64)
        return cls(views.astype(np.int64), inverse[: len(anchor_views)], inverse[len(anchor_views) :])


def _distinct_with_weights(index: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct entries of ``index`` carrying positive total weight, and those weights."""
    unique, inverse = np.unique(index, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=weight, minlength=len(unique))
    keep = merged > 0
    return unique[keep], merged[keep]


class Support(NamedTuple):
    """The distinct views of a finite measure and how they are coupled.

    ``views``: every distinct point of the measure (x1, x2, anchors, negatives), encoded
    once per encoder, with their :class:`Slots`. ``first`` / ``second``: the views
    (indices into ``views``) that occur as x1 / x2; ``pairs``: couplings (position in
    ``first``, position in ``second``) with the merged pair weights; ``anchor`` /
    ``negative``: views of the anchors and negatives with their merged weights.
    """

    views: np.ndarray
    slots: Slots
    first: np.ndarray
    second: np.ndarray
    pairs: Couplings
    anchor: np.ndarray
    anchor_weight: np.ndarray
    negative: np.ndarray
    negative_weight: np.ndarray

    @classmethod
    def from_measure(cls, measure: FiniteMeasure, trainable_bias: bool) -> Support:
        """The distinct views of ``measure``, their slots and the merged couplings."""
        parts = (measure.x1, measure.x2, measure.anchor, measure.negative)
        views, inverse = np.unique(np.concatenate(parts), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        bounds = np.cumsum([0] + [len(part) for part in parts])
        x1_view, x2_view, anchor_view, negative_view = (inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        first, x1_position = np.unique(x1_view, return_inverse=True)
        second, x2_position = np.unique(x2_view, return_inverse=True)
        pairs = Couplings.from_lists(
            x1_position.ravel(), x2_position.ravel(), measure.pair_weight, len(first), len(second)
        )
        anchor, anchor_weight = _distinct_with_weights(anchor_view, measure.anchor_weight)
        negative, negative_weight = _distinct_with_weights(negative_view, measure.negative_weight)
        views = np.ascontiguousarray(views)
        return cls(
            views,
            Slots.of_views(views, trainable_bias),
            first,
            second,
            pairs,
            anchor,
            anchor_weight,
            negative,
            negative_weight,
        )


def validated_measure(measure: FiniteMeasure) -> tuple[FiniteMeasure, int]:
    """The measure as read-only float64 arrays with finite entries and non-negative weights,
    and the input dimension p; a ValueError names the field that is not."""
    x1 = check.finite_array("measure.x1", measure.x1, ndim=2)
    if x1.shape[1] < 1:
        raise ValueError(f"measure.x1 must have shape (n, p) with p >= 1, got shape {x1.shape}")
    p = x1.shape[1]
    fields = {
        "x1": x1,
        "x2": check.finite_array("measure.x2", measure.x2, shape=x1.shape),
        "anchor": check.finite_array("measure.anchor", measure.anchor, shape=(None, p)),
        "negative": check.finite_array("measure.negative", measure.negative, shape=(None, p)),
    }
    for name, points in (("pair_weight", "x1"), ("anchor_weight", "anchor"), ("negative_weight", "negative")):
        size = len(fields[points])
        fields[name] = check.finite_array(f"measure.{name}", getattr(measure, name), shape=(size,), low=0.0)
    return FiniteMeasure(**fields, empirical=bool(measure.empirical)), p
