"""Exact value, gradient and Hessian of every loss when the expectation is a finite sum.

The input is a :class:`~critpoints.data.finite_measure.FiniteMeasure`: weighted pairs of
views (x1[n], x2[n], w[n]), anchors (the law of x1 alone) and negatives (the law of x').
Every loss of derivations/MODEL.md §4 is then a sum over *couplings* of two representations
r, c in R^m (a pair (f_o(x1), f_t(x2)), or an anchor and a negative) of a pointwise function
of the three invariants A = r.r, B = c.c, C = r.c (derivations/pointwise_losses.py/.md),
as the family's record says (critpoints.model.families)::

    L = constant + scale sum_n w_n phi(f_o(x1_n), f_t(x2_n))  [+ repulsion]

The derivatives are assembled in three stages of numba kernels (derivations/
pointwise_losses.md §4), one module per concern:

* :mod:`~critpoints.losses.encoder` (stage 1): the encoder on every distinct view, giving
  the representation and the entries of its Jacobian that can be nonzero (the view's
  *slots*: views of the exact enumeration are masked sparse codes);
* :mod:`.support`: the distinct views of the measure and their couplings;
* :mod:`.pairs` (stage 2): per coupling term, the family's generated pointwise kernel
  (critpoints.losses._generated.pointwise_kernels) for the invariant derivatives of every
  coupling, summed per view into representation gradients and m x m self blocks, and the
  cross blocks between the two views of a coupling, written into the Hessian directly;
* :mod:`.repulsion` and :mod:`.log_sum_exp`: the repulsion terms of the contrastive
  families (the squared inner product through its moments; the dense anchor x negative
  log-sum-exp over the pool of views);
* :mod:`.predictor`: the online and target objectives of a predictor family (a field);
* :mod:`.accumulator` (stage 3): the chain rule of the per-view terms and the storage of
  the Hessian in m x m blocks, one per pair of (encoder, input coordinate), and only one of
  each pair of symmetric blocks;
* :mod:`.evaluator`: :class:`MeasureEvaluator`, which reads the family's record.

Within an activation pattern the encoder is linear in its parameters, so the Hessian is
exactly J^T (d^2 loss) J.

Conventions (derivations/pointwise_losses.md):

* kinks of the symmetric ReLU: a pre-activation t exactly at a threshold uses the piece
  entered as t increases, a1 = [t + b >= 0], a2 = [-t + b > 0]; value, gradient and
  Hessian are those of that piece. A zero view has zero representation and zero
  derivatives (sigma_b(0) = 0 for every b and w). With b = 0 this makes the symrelu
  exactly the identity, derivatives included;
* n(0) = 0: a zero representation contributes 0 to every cosine and 0 to its derivatives;
* equal support points are merged (weights added) and zero-weight points dropped, which
  changes nothing but the rounding of the sums.
"""

from critpoints.losses.measure.accumulator import accumulation_index, internal_index
from critpoints.losses.measure.evaluator import MeasureEvaluator

__all__ = ["MeasureEvaluator", "accumulation_index", "internal_index"]
