"""Interval models of the losses: gradient and Hessian enclosures over a box of parameters.

Every formula comes from the generated arb kernels (critpoints.certify._generated.interval_kernels,
emitted by derivations/interval_kernels.py from the derivations of the float kernels); the
family's record (critpoints.model.families) says which kernels make up its loss. The
models only compose them:

* closed form (linear encoder, a family with a closed form): the generated
  ``<family>_gradient`` / ``<family>_hessian`` at enclosures of the exact view moments;
* exact enumeration (every gradient family; linear or symrelu, fixed or trainable bias): the
  loss is a sum over couplings of weight * phi(r.r, c.c, r.c) with exact weights from
  :func:`~critpoints.certify.exact.exact_view_law`; per coupling the generated kernels give
  the invariant derivatives and the chain rule to (r, c); on one activation piece the
  encoder is affine in the parameters (generated ``symrelu_piece``), so with U the parameter
  Jacobian of a representation

      grad L = sum U^T g,   Hess L = sum [U_r; U_c]^T [[H_rr, H_rc], [H_cr, H_cc]] [U_r; U_c],

  and for a log-sum-exp repulsion, with Z_a the partition sum, Hess log Z_a =
  g'(Z_a) Hess Z_a + g''(Z_a) grad Z_a grad Z_a^T (g = log).
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from critpoints.certify.balls import ball, ball_column, rational_ball, require_flint
from critpoints.certify.exact import ExactViewLaw, exact_view_law, moment_enclosures
from critpoints.model.families import LossFamily

if TYPE_CHECKING:
    from critpoints.losses.population_loss import PopulationLoss


def _interval_kernels() -> Any:
    """The generated arb kernels (imported after python-flint is known to be present)."""
    require_flint()
    from critpoints.certify._generated import interval_kernels

    return interval_kernels


class _ClosedFormModel:
    """Gradient and Hessian of a closed-form loss (linear encoder) in ball arithmetic.

    The generated ``<family>_gradient`` / ``<family>_hessian`` (read off
    derivations/closed_form_losses.py) at the parameter blocks (W[, W_t]) and at
    :func:`moment_enclosures`, with Cneg = C22 (a negative is distributed as a view).
    """

    def __init__(self, loss: PopulationLoss) -> None:
        kernels = _interval_kernels()
        family = loss.setting.loss.name
        self.layout = loss.layout
        C11, C12, C22 = moment_enclosures(loss.setting)
        self.moments = (C11, C12, C22, C22)
        self._gradient = getattr(kernels, f"{family}_gradient")
        self._hessian = getattr(kernels, f"{family}_hessian")

    def _blocks(self, theta: Sequence[Any]) -> list[Any]:
        flint = require_flint()
        blocks = []
        for name, (rows, cols) in self.layout.shapes.items():
            start = self.layout.slice(name).start
            blocks.append(flint.arb_mat([[theta[start + i * cols + a] for a in range(cols)] for i in range(rows)]))
        return blocks

    def derivatives(self, theta: Sequence[Any]) -> tuple[list[Any], Any]:
        """(gradient as a list of balls, Hessian as an arb_mat) over the balls ``theta``."""
        blocks = self._blocks(theta)
        gradient = self._gradient(*blocks, *self.moments)
        return [gradient[i, 0] for i in range(gradient.nrows())], self._hessian(*blocks, *self.moments)

    def pattern_ok(self, theta: Sequence[Any]) -> bool:
        """A polynomial loss has no activation pattern."""
        return True


class _Coupling(NamedTuple):
    """weight * phi(r.r, c.c, r.c) with r, c the representations of two (view, encoder) keys,
    phi the ball-arithmetic ``kernel``."""

    row: tuple[int, int]
    col: tuple[int, int]
    weight: Any
    kernel: Callable


#: The pointwise kernel of each repulsion kind of critpoints.model.families, and whether the
#: anchor's couplings go through log (the log-sum-exp partition) or are summed as they are.
_REPULSION_KERNELS = {"squared_inner_product": ("squared_inner_product", False), "log_sum_exp": ("exp_cosine", True)}


def _interval_kernel(name: str, module: str | None) -> Callable:
    """The arb kernel ``name`` (in ``module``, or the package's generated interval kernels)."""
    source = _interval_kernels() if module is None else importlib.import_module(module)
    kernel = getattr(source, name, None)
    if kernel is None:
        raise LookupError(f"no interval kernel {name!r} in {source.__name__}")
    return kernel


class _MeasureModel:
    """Gradient and Hessian of a finite-measure loss on the activation piece of theta0, in arb.

    The loss is a sum of couplings weight * phi (:class:`_Coupling`), read off the family's
    record (critpoints.model.families):

    * pairs (x1, x2, w): the family's pair kernel with weight scale * w (x1 through the
      online encoder, x2 through the target one), e.g. cosine with -2 w or -w / tau;
    * a repulsion ``squared_inner_product``, E[(f(x1).f(x'))^2]: that kernel on every
      anchor x negative with weight wa wn; ``log_sum_exp``: sum_a wa log Z_a with
      Z_a = sum_j wn_j exp(cos_aj / tau) a sum of ``exp_cosine`` couplings.

    Each representation is r_i = sigma(w_i.x, b_i) on the piece (up, down) of theta0
    (generated ``symrelu_piece``; a linear neuron, or a symrelu neuron with fixed b = 0,
    is the piece (1, 0) at b = 0, the identity), with parameter Jacobian U
    (U[i, w_ia] = d sigma/dt x_a, U[i, b_i] = d sigma/db). Per coupling the generated kernel
    and ``representation_derivatives`` give (g_r, g_c, H_rr, H_rc, H_cc); they are summed per
    key, then grad = sum U^T g, Hess = sum U^T H_self U + sum (U_r^T H_rc U_c + transpose).
    """

    def __init__(self, loss: PopulationLoss, theta0: np.ndarray) -> None:
        setting = loss.setting
        self.kernels = _interval_kernels()
        self.m, self.p, self.layout = setting.m, setting.p, loss.layout
        self.n = loss.layout.size
        law = exact_view_law(setting)
        self.views = law.views
        spec = setting.loss
        family = spec.family
        self.encoders = [("W", "b"), ("W_t", "b_t") if spec.two_encoders else ("W", "b")]
        self.trainable = setting.trainable_bias
        fixed = np.zeros(self.m) if self.trainable or setting.encoder == "linear" else np.asarray(setting.bias, float)
        self.fixed_bias = fixed
        self.identity = np.zeros(self.m, bool) if self.trainable else (setting.encoder == "linear") | (fixed == 0.0)
        self.inv_tau = ball(1.0) if spec.temperature is None else 1 / ball(spec.temperature)
        self.couplings, self.partitions = self._terms(family, spec, law)
        every = self._all_couplings()
        self.keys = sorted({c.row for c in every} | {c.col for c in every})
        self.pattern = self._pattern(np.asarray(theta0, dtype=np.float64))

    def _all_couplings(self) -> list[_Coupling]:
        return self.couplings + [c for _, group in self.partitions for c in group]

    def _terms(
        self, family: LossFamily, spec: Any, law: ExactViewLaw
    ) -> tuple[list[_Coupling], list[tuple[Any, list[_Coupling]]]]:
        """The couplings of the loss, and the log-sum-exp partitions (wa, couplings of Z_a)."""
        target = 1 if family.encoders == 2 else 0  # x2: the target (or tied) encoder
        pair = family.pair_term(spec.normalize)
        kernel = _interval_kernel(pair.kernel, pair.interval_kernels)
        scale = ball(pair.scale) * (self.inv_tau if pair.over_temperature else 1)
        couplings = [_Coupling((i, 0), (j, target), rational_ball(w) * scale, kernel) for i, j, w in law.pairs]
        partitions = []
        if family.repulsion != "none":
            name, through_log = _REPULSION_KERNELS[family.repulsion]
            kernel = _interval_kernel(name, None)
            if through_log:
                for a, wa in law.singles:
                    group = [_Coupling((a, 0), (j, 0), rational_ball(wn), kernel) for j, wn in law.singles]
                    partitions.append((rational_ball(wa), group))
            else:
                couplings += [
                    _Coupling((a, 0), (j, 0), rational_ball(wa * wn), kernel)
                    for a, wa in law.singles
                    for j, wn in law.singles
                ]
        return couplings, partitions

    def _pre_activation(self, theta: Sequence[Any], view: int, encoder: int, neuron: int) -> Any:
        """t = w_i . x over the balls theta (the exact zeros of x skipped)."""
        start = self.layout.slice(self.encoders[encoder][0]).start + neuron * self.p
        t = ball(0.0)
        for a, x in enumerate(self.views[view]):
            if x != 0.0:
                t += theta[start + a] * float(x)
        return t

    def _bias(self, theta: Sequence[Any], encoder: int, neuron: int) -> Any:
        if self.trainable:
            return theta[self.layout.slice(self.encoders[encoder][1]).start + neuron]
        return ball(self.fixed_bias[neuron])

    def _active(self, view: int) -> bool:
        """A zero view has r = 0 and U = 0: sigma_b(0) = 0 for every b and w."""
        return bool(np.any(self.views[view]))

    def _pattern(self, theta0: np.ndarray) -> dict[tuple[int, int, int], tuple[int, int]]:
        """(up, down) = ([t + b > 0], [b - t > 0]) of every neuron on every nonzero view at theta0."""
        point = [ball(v) for v in theta0]
        pattern = {}
        for view, encoder in self.keys:
            for i in range(self.m):
                if self.identity[i]:
                    pattern[(view, encoder, i)] = (1, 0)
                    continue
                t = float(self._pre_activation(point, view, encoder, i).mid())
                b = float(self._bias(point, encoder, i).mid())
                pattern[(view, encoder, i)] = (int(t + b > 0), int(b - t > 0))
        return pattern

    def pattern_ok(self, theta: Sequence[Any]) -> bool:
        """Every pre-activation of a nonzero view keeps the pattern of theta0 over the balls theta."""
        for view, encoder in self.keys:
            if not self._active(view):
                continue
            for i in range(self.m):
                if self.identity[i]:
                    continue
                t, b = self._pre_activation(theta, view, encoder, i), self._bias(theta, encoder, i)
                up, down = self.pattern[(view, encoder, i)]
                if not ((t + b > 0) if up else (t + b < 0)) or not ((b - t > 0) if down else (b - t < 0)):
                    return False
        return True

    def _encode(self, theta: Sequence[Any], view: int, encoder: int) -> tuple[Any, Any]:
        """The representation r (m x 1) of a view and its parameter Jacobian U (m x n)."""
        flint = require_flint()
        r, U = flint.arb_mat(self.m, 1), flint.arb_mat(self.m, self.n)
        if not self._active(view):
            return r, U
        x = self.views[view]
        for i in range(self.m):
            t, b = self._pre_activation(theta, view, encoder, i), self._bias(theta, encoder, i)
            value, slope, bias_slope = self.kernels.symrelu_piece(t, b, *self.pattern[(view, encoder, i)])
            r[i, 0] = value
            start = self.layout.slice(self.encoders[encoder][0]).start + i * self.p
            for a in np.flatnonzero(x):
                U[i, start + a] = slope * float(x[a])
            if self.trainable:
                U[i, self.layout.slice(self.encoders[encoder][1]).start + i] = bias_slope
        return r, U

    def _coupling_sum(self, couplings: list[_Coupling], reps: dict) -> tuple[Any, Any, Any]:
        """(value, gradient n x 1, Hessian n x n) of sum weight * phi over the couplings."""
        flint = require_flint()
        m, n = self.m, self.n
        value = ball(0.0)
        grads: defaultdict[Any, Any] = defaultdict(lambda: flint.arb_mat(m, 1))
        selfs: defaultdict[Any, Any] = defaultdict(lambda: flint.arb_mat(m, m))
        crosses: defaultdict[Any, Any] = defaultdict(lambda: flint.arb_mat(m, n))
        zero = ball(0.0)
        for coupling in couplings:
            (r, _), (c, U_c) = reps[coupling.row], reps[coupling.col]
            invariants = [(u.transpose() * v)[0, 0] for u, v in ((r, r), (c, c), (r, c))]
            d = coupling.kernel(*invariants, self.inv_tau, zero)
            g_r, g_c, h_rr, h_rc, h_cc = self.kernels.representation_derivatives(d, r, c)
            w = coupling.weight
            value += w * d[0]
            grads[coupling.row] += g_r * w
            grads[coupling.col] += g_c * w
            selfs[coupling.row] += h_rr * w
            selfs[coupling.col] += h_cc * w
            crosses[coupling.row] += h_rc * w * U_c
        gradient, hessian = flint.arb_mat(n, 1), flint.arb_mat(n, n)
        for key, g in grads.items():
            U = reps[key][1]
            gradient += U.transpose() * g
            hessian += U.transpose() * selfs[key] * U
        for key, T in crosses.items():
            mixed = reps[key][1].transpose() * T
            hessian += mixed + mixed.transpose()
        return value, gradient, hessian

    def derivatives(self, theta: Sequence[Any]) -> tuple[list[Any], Any]:
        """(gradient as a list of balls, Hessian as an arb_mat) over the balls ``theta``.

        Raises ZeroDivisionError when a cosine's representation may vanish in the balls.
        """
        reps = {key: self._encode(theta, *key) for key in self.keys}
        _, gradient, hessian = self._coupling_sum(self.couplings, reps)
        for wa, group in self.partitions:
            partition, grad_z, hess_z = self._coupling_sum(group, reps)
            _, first, second = self.kernels.log_partition(partition)
            gradient += grad_z * (wa * first)
            hessian += hess_z * (wa * first) + grad_z * grad_z.transpose() * (wa * second)
        return [gradient[i, 0] for i in range(self.n)], hessian


def derivative_model(loss: PopulationLoss, theta0: np.ndarray) -> Any:
    """The arb model of the setting's loss, or a string saying why there is none."""
    if loss.is_field:
        return f"{loss.setting.loss.name} is a stop-gradient field, not a gradient (no interval model)"
    if loss.empirical:
        return "sample_average losses are empirical; only population losses are certified"
    if loss.measure is None:
        return _ClosedFormModel(loss)
    try:
        return _MeasureModel(loss, theta0)
    except LookupError as error:
        return f"{error}: no interval model of loss {loss.setting.loss.name!r}"


def enclose_derivatives(loss: PopulationLoss, theta: np.ndarray) -> tuple[Any, Any]:
    """Balls containing the Euclidean gradient and Hessian of the loss at ``theta``.

    Parameters
    ----------
    loss : PopulationLoss
    theta : ndarray, shape (n,)
        Floats, taken as exact; for symrelu, the piece is the activation pattern at theta
        (every pre-activation strictly off its kinks).

    Returns
    -------
    (gradient, hessian) : arb_mat of shapes (n, 1) and (n, n)
        From the generated interval kernels (see the module docstring).

    Raises
    ------
    ValueError
        If the setting has no interval model (the reason is the message), theta is on a kink,
        or theta has the wrong length or is not finite.
    """
    theta = loss.layout.check(theta)
    model = derivative_model(loss, theta)
    if isinstance(model, str):
        raise ValueError(model)
    point = [ball(v) for v in theta]
    if not model.pattern_ok(point):
        raise ValueError("theta is on a kink of the symmetric ReLU")
    gradient, hessian = model.derivatives(point)
    return ball_column(gradient), hessian
