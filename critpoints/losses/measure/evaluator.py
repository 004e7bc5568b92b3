"""The finite-measure evaluator: one objective (or two, for a field) per family record.

:class:`MeasureEvaluator` reads the family's record (critpoints.model.families): its pair
term (a generated pointwise kernel, a scale and a constant), its repulsion kind, its
encoders and whether it is a stop-gradient field. It encodes every view once per encoder
(critpoints.losses.encoder), adds the pair term (critpoints.losses.measure.pairs), the
repulsion (critpoints.losses.measure.repulsion) or the predictor objectives
(critpoints.losses.measure.predictor), and finishes the chain rule
(critpoints.losses.measure.accumulator).
"""

from __future__ import annotations

import numpy as np

from critpoints import _validation as check
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.losses.encoder import encode
from critpoints.losses.kernels import PairKernel
from critpoints.losses.measure.accumulator import Accumulator, accumulation_index
from critpoints.losses.measure.pairs import NO_MAP, Side, pair_term
from critpoints.losses.measure.predictor import dense_slots, predictor_objective
from critpoints.losses.measure.repulsion import REPULSIONS, RepulsionInputs
from critpoints.losses.measure.support import Support, ViewPool, validated_measure
from critpoints.losses.parameters import ParameterLayout
from critpoints.model.families import family_names, loss_family
from critpoints.model.setting import ENCODERS


def _validated_bias(fixed_bias: object, m: int, one_encoder: bool) -> tuple[np.ndarray, np.ndarray]:
    """(b, b_t), each broadcast to m finite numbers; equal when the setting has one encoder."""
    if not isinstance(fixed_bias, (tuple, list)) or len(fixed_bias) != 2:
        raise ValueError(f"fixed_bias must be a pair (b, b_t) of m={m} numbers each, got fixed_bias={fixed_bias!r}")
    pair = []
    for label, b in zip(("b", "b_t"), fixed_bias):
        values = check.finite_array(f"fixed_bias {label}", b)
        if values.ndim > 1 or values.size not in (1, m):
            raise ValueError(f"fixed_bias {label} must be a number or m={m} numbers, got fixed_bias {label}={b!r}")
        pair.append(np.broadcast_to(values, (m,)).copy())
    if one_encoder and not np.array_equal(pair[0], pair[1]):
        raise ValueError(
            f"fixed_bias (b, b_t) must be equal: this setting has one encoder, got fixed_bias={fixed_bias!r}"
        )
    return pair[0], pair[1]


class MeasureEvaluator:
    """Value, gradient and Hessian (or field and Jacobian) of a loss over a finite measure.

    Parameters
    ----------
    family : str
        A registered loss family (critpoints.model.families).
    measure : FiniteMeasure
        The weighted pairs, anchors and negatives. Expectations are the weighted sums;
        the constants of the pair terms (the 2 of 2 - 2 E cos) assume weights summing to one.
    encoder : {"linear", "symrelu"}
        f(x) = W x, or f_i(x) = ReLU(w_i.x + b_i) - ReLU(-w_i.x + b_i).
    m : int
        Number of neurons.
    fixed_bias : (b, b_t), optional
        symrelu only: the fixed biases of the online (or only) and target encoders, each a
        number or m numbers. With one encoder (one-encoder families, tied) they must be equal.
    trainable_bias : bool
        symrelu only: the biases are parameters (blocks ``b``, ``b_t``). Exactly one of
        ``fixed_bias`` and ``trainable_bias`` must be given for symrelu.
    tied : bool
        Two-encoder families: one encoder f = f_o = f_t for both views. One-encoder
        families always have one encoder (the flag changes nothing).
    temperature : float
        tau > 0, for the families whose terms use it (ignored by the others).
    normalize : bool
        False only for a family with the option ``normalize``: its pair term with raw
        inner products (e.g. L_o = -2 E<P u, sg v> for the predictor family).

    Attributes
    ----------
    layout : ParameterLayout
        theta = (W, W_t, b, b_t, P), the blocks present, each row-major.
    n_params : int
    is_field : bool
        True for a predictor family (a vector field, not a gradient); use :meth:`field` and
        :meth:`jacobian`. For the other losses ``field`` / ``jacobian`` are the gradient
        and the Hessian.
    support_size : int
        Number of distinct couplings summed (pairs, plus the couplings of the repulsion:
        anchor x negative combinations for log-sum-exp, anchors and negatives for the
        squared inner product summed through its moments).
    empirical : bool
        The measure is a fixed sample (its values are empirical averages).
    """

    def __init__(
        self,
        family: str,
        measure: FiniteMeasure,
        *,
        encoder: str,
        m: int,
        fixed_bias: tuple[np.ndarray, np.ndarray] | None = None,
        trainable_bias: bool = False,
        tied: bool = False,
        temperature: float = 1.0,
        normalize: bool = True,
    ) -> None:
        record = loss_family(check.choice("family", family, family_names()))
        self.family = record.name
        self.encoder = check.choice("encoder", encoder, ENCODERS)
        self.m = check.integer("m", m, minimum=1)
        self.tied = check.flag("tied", tied)
        self.trainable_bias = check.flag("trainable_bias", trainable_bias)
        self.normalize = check.flag("normalize", normalize)
        if not self.normalize and "normalize" not in record.options:
            raise ValueError(f"normalize=False applies only to a family with that option, got family={family!r}")
        self.temperature = check.real("temperature", temperature, low=0.0, low_open=True)

        measure, self.p = validated_measure(measure)
        self.empirical = measure.empirical
        self.two_encoders = record.encoders == 2
        self.is_field = record.field
        one_encoder = self.tied or not self.two_encoders
        # A tied gradient family is one encoder on both views; the stop-gradient field of a
        # tied predictor family differentiates the two views separately, so it keeps two.
        self._n_evaluated_encoders = 1 if one_encoder and not (self.is_field and self.tied) else 2
        self._fixed_bias = self._validated_encoder_options(fixed_bias, one_encoder)
        uses_temperature = "temperature" in record.options
        self._pair = PairKernel.of(record.pair_term(self.normalize), self.temperature if uses_temperature else None)
        self._repulsion = REPULSIONS.get(record.repulsion)

        self.layout = ParameterLayout.for_model(
            m=self.m,
            p=self.p,
            two_encoders=self.two_encoders and not self.tied,
            trainable_bias=self.trainable_bias,
            predictor=self.is_field,
        )
        self.n_params = self.layout.size
        self._q = self.p + 1 if self.trainable_bias else self.p
        self._position = accumulation_index(self.layout)
        self._fold = self.is_field and self.tied
        accumulated = self._n_evaluated_encoders * self.m * self._q + (self.m * self.m if self.is_field else 0)
        # The gradient families' Hessian is gathered straight into theta's layout; the field's
        # Jacobian takes rows of two Hessians (and may fold), so it is gathered whole first.
        gathered_entries = np.arange(accumulated) if self.is_field else self._position
        self._hessian_offsets = Accumulator.gather_offsets(gathered_entries, accumulated, self.m)

        support = Support.from_measure(measure, self.trainable_bias)
        self._support = support
        self._check_support()
        self._reversed_pairs = support.pairs.transposed() if self.is_field else None
        self._predictor_slots = (
            (dense_slots(len(support.first), self.m), dense_slots(len(support.second), self.m))
            if self.is_field
            else None
        )
        pool = ViewPool.of(support.anchor, support.negative) if self._repulsion and self._repulsion.pooled else None
        self._repulsion_inputs = RepulsionInputs(support, pool, self._q, 1.0 / self.temperature)
        self.support_size = len(support.pairs.rows) + (self._repulsion.couplings(support) if self._repulsion else 0)

    # ----- construction -----

    def _validated_encoder_options(self, fixed_bias, one_encoder: bool) -> tuple[np.ndarray, np.ndarray] | None:
        if self.encoder == "linear":
            if fixed_bias is not None or self.trainable_bias:
                raise ValueError(
                    "fixed_bias and trainable_bias must be None and False for encoder='linear' (it has no bias), "
                    f"got fixed_bias={fixed_bias!r}, trainable_bias={self.trainable_bias!r}"
                )
            return None
        if (fixed_bias is None) == (not self.trainable_bias):
            raise ValueError(
                "encoder='symrelu' needs exactly one of fixed_bias=(b, b_t) and trainable_bias=True, "
                f"got fixed_bias={fixed_bias!r}, trainable_bias={self.trainable_bias!r}"
            )
        return None if fixed_bias is None else _validated_bias(fixed_bias, self.m, one_encoder)

    def _check_support(self) -> None:
        support = self._support
        if len(support.pairs.rows) == 0:
            raise ValueError("measure.pair_weight must have a positive weight (a non-empty pair law)")
        if self._repulsion is not None and (len(support.anchor) == 0 or len(support.negative) == 0):
            raise ValueError(
                f"measure.anchor_weight and measure.negative_weight must have positive weights: family={self.family!r} "
                "has a repulsion"
            )

    def _fold_tied(self, internal: np.ndarray) -> np.ndarray:
        """Tied encoders (theta_t = theta_o): add the two encoder blocks of every axis,
        i.e. S x and S H S^T with S = [I, I, 0; 0, 0, I]."""
        block = self.m * self._q
        for axis in range(internal.ndim):
            online = np.take(internal, np.arange(block), axis=axis)
            head = online + np.take(internal, np.arange(block, 2 * block), axis=axis)
            tail = np.take(internal, np.arange(2 * block, internal.shape[axis]), axis=axis)
            internal = np.concatenate([head, tail], axis=axis)
        return internal

    # ----- parameters -----

    def _encoder_parameters(self, theta: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
        """[(W_e, b_e) for each evaluated encoder], P (or None), as views of theta."""
        layout = self.layout
        names = [("W", "b"), ("W_t", "b_t")] if "W_t" in layout.shapes else [("W", "b"), ("W", "b")]
        params = []
        for e in range(self._n_evaluated_encoders):
            w_name, b_name = names[e]
            if self.trainable_bias:
                bias = theta[layout.slice(b_name)]
            elif self._fixed_bias is not None:
                bias = self._fixed_bias[e]
            else:
                bias = np.zeros(self.m)
            params.append((theta[layout.slice(w_name)].reshape(self.m, self.p), bias))
        return params, (theta[layout.slice("P")].reshape(self.m, self.m) if self.is_field else None)

    def _encode_views(self, params: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(representations, Jacobian slots) of every view of the support under one encoder."""
        weights, bias = params
        slots = self._support.slots
        return encode(self._support.views, slots.ptr, slots.coord, weights, bias, self.encoder == "symrelu")

    def _side(self, acc: Accumulator, encoded: list, encoder: int, views: np.ndarray) -> Side:
        """The views ``views`` under encoder ``encoder`` as one side of a coupling term."""
        rep, jac = encoded[encoder]
        slots = self._support.slots
        return Side(
            rep,
            views,
            acc.view_grad[encoder],
            acc.view_self[encoder],
            views,
            slots.ptr,
            slots.coord,
            jac,
            encoder * self._q,
            self._q,
        )

    def _to_public(self, internal: np.ndarray) -> np.ndarray:
        """Fold tied encoders and reorder accumulated entries into theta's layout."""
        folded = self._fold_tied(internal) if self._fold else internal
        if folded.ndim == 1:
            return folded[self._position]
        return folded[np.ix_(self._position, self._position)]

    # ----- the losses -----

    def _accumulator(self, order: int) -> Accumulator:
        return Accumulator(self._n_evaluated_encoders, len(self._support.views), self.m, self._q, self.is_field, order)

    def _evaluate(self, theta, order: int) -> list[Accumulator]:
        """Internal accumulators: one for a gradient family, (L_o, L_t) for a field."""
        return self._evaluate_valid(self.layout.check(theta), order)

    def _evaluate_valid(self, theta: np.ndarray, order: int) -> list[Accumulator]:
        params, predictor = self._encoder_parameters(theta)
        support = self._support
        encoded = [self._encode_views(params[e]) for e in range(self._n_evaluated_encoders)]
        view_jac = [jac for _, jac in encoded]
        last = self._n_evaluated_encoders - 1
        if self.is_field:
            assert predictor is not None  # a field family has the block P
            return [acc.finish(support.slots, view_jac, order) for acc in self._objectives(encoded, predictor, order)]
        acc = self._accumulator(order)
        first = self._side(acc, encoded, 0, support.first)
        second = self._side(acc, encoded, last, support.second)
        acc.value += self._pair.constant
        acc.value += pair_term(self._pair, support.pairs, first, second, NO_MAP, order, order >= 2, acc.hess)
        if self._repulsion is not None:
            self._repulsion.add(self._repulsion_inputs, acc, *encoded[0], order)
        return [acc.finish(support.slots, view_jac, order)]

    def _objectives(self, encoded: list, predictor: np.ndarray, order: int) -> tuple[Accumulator, Accumulator]:
        """(L_o, L_t) of a predictor family: P on the online views against the target views,
        and P on the target views against the online ones."""
        support = self._support
        last = self._n_evaluated_encoders - 1
        assert self._predictor_slots is not None and self._reversed_pairs is not None  # built for fields
        first_slots, second_slots = self._predictor_slots
        online, target = self._accumulator(order), self._accumulator(order)
        for acc, own, other, couplings, row_views, col_views, predictor_slots in (
            (online, 0, last, support.pairs, support.first, support.second, first_slots),
            (target, last, 0, self._reversed_pairs, support.second, support.first, second_slots),
        ):
            predictor_objective(
                self._pair,
                acc,
                (*encoded[own], own),
                self._side(acc, encoded, other, col_views),
                predictor,
                couplings,
                row_views,
                support.slots,
                predictor_slots,
                self._q,
                order,
            )
        return online, target

    @staticmethod
    def _field_rows(acc: Accumulator, of_online: np.ndarray, of_target: np.ndarray) -> np.ndarray:
        """Rows of the stop-gradient field (or its Jacobian) from the derivatives of L_o and L_t.

        F = (dL_o/d theta_o, dL_t/d theta_t, dL_o/dP + dL_t/dP); dF/dtheta takes the
        same rows of the Hessians of L_o and L_t (every column).
        """
        out = np.empty_like(of_online)
        s_o, s_t, s_p = acc.encoder_slice(0), acc.encoder_slice(1), acc.predictor_slice()
        out[s_o] = of_online[s_o]
        out[s_t] = of_target[s_t]
        out[s_p] = of_online[s_p] + of_target[s_p]
        return out

    def _field(self, online: Accumulator, target: Accumulator) -> np.ndarray:
        return self._to_public(self._field_rows(online, online.grad, target.grad))

    def _field_jacobian(self, online: Accumulator, target: Accumulator) -> np.ndarray:
        of_online, of_target = online.hessian(self._hessian_offsets), target.hessian(self._hessian_offsets)
        return self._to_public(self._field_rows(online, of_online, of_target))

    def _require_gradient_family(self, method: str) -> None:
        if self.is_field:
            raise TypeError(
                f"{method}() is not defined for family={self.family!r}: its stop-gradient dynamics is not the "
                "gradient of a function; use field() and jacobian()"
            )

    # ----- public API -----

    def value(self, theta: np.ndarray) -> float:
        """The loss at theta.

        For a field: the symmetric loss (L_o + L_t) / 2, where the stop-gradient plays no
        role (see :meth:`objectives`).
        """
        accs = self._evaluate(theta, 0)
        return float(sum(acc.value for acc in accs) / len(accs))

    def objectives(self, theta: np.ndarray) -> tuple[float, float]:
        """A predictor family: the online and target objectives (L_o, L_t) at theta."""
        if not self.is_field:
            raise TypeError(f"objectives() is defined for a predictor family only, not family={self.family!r}")
        online, target = self._evaluate(theta, 0)
        return online.value, target.value

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """dL/dtheta (gradient families), shape (n_params,)."""
        self._require_gradient_family("gradient")
        return self._evaluate(theta, 1)[0].grad[self._position]

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """d^2 L/dtheta^2 of the activation pattern's piece (gradient families), symmetric (n_params, n_params)."""
        self._require_gradient_family("hessian")
        return self._evaluate(theta, 2)[0].hessian(self._hessian_offsets)

    def value_gradient_hessian(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(value, gradient, Hessian) in one pass (gradient families)."""
        self._require_gradient_family("value_gradient_hessian")
        acc = self._evaluate(theta, 2)[0]
        return acc.value, acc.grad[self._position], acc.hessian(self._hessian_offsets)

    def field(self, theta: np.ndarray) -> np.ndarray:
        """The vector field whose zeros are the stationary points, shape (n_params,).

        Predictor family: F = (dL_o/dW, dL_t/dW_t, dL_o/db, dL_t/db_t, dL_o/dP + dL_t/dP)
        (blocks as present; tied: dL_o/dW + dL_t/dW through the two views). Other
        families: the gradient.
        """
        if not self.is_field:
            return self.gradient(theta)
        return self._field(*self._evaluate(theta, 1))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """dF/dtheta (non-symmetric for a field; the Hessian otherwise), (n_params, n_params)."""
        if not self.is_field:
            return self.hessian(theta)
        return self._field_jacobian(*self._evaluate(theta, 2))

    def field_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(field, Jacobian) in one pass."""
        if not self.is_field:
            _, grad, hess = self.value_gradient_hessian(theta)
            return grad, hess
        online, target = self._evaluate(theta, 2)
        return self._field(online, target), self._field_jacobian(online, target)
