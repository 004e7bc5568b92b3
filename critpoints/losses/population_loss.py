"""The loss object of a setting: value, gradient and Hessian over one flat theta.

``population_loss(setting)`` picks the evaluator for the setting's expectation mode —
the generated closed-form kernels (linear encoders, polynomial losses) or the finite-measure
kernels (exact enumeration of the view law, or a fixed sample) — and wraps it with the
parameter layout, the weight constraint (a product of spheres, critpoints.manifolds.spheres) and the
symmetry group (critpoints.losses.symmetries). It knows nothing of solvers.
"""

from __future__ import annotations

import numpy as np

from critpoints.data.finite_measure import FiniteMeasure
from critpoints.data.moments import view_moments
from critpoints.data.view_laws import exact_view_measure, sample_view_measure
from critpoints.losses.closed_form import ClosedFormEvaluator
from critpoints.losses.measure import MeasureEvaluator
from critpoints.losses.parameters import ParameterLayout
from critpoints.losses.resources import check_resources
from critpoints.losses.symmetries import SymmetryGroup, setting_symmetries
from critpoints.manifolds.spheres import SphereBlock, SphereProduct
from critpoints.model.setting import ClosedForm, ExactEnumeration, Setting

_AXIS = {"unit_rows": "rows", "unit_columns": "columns"}


def constraint_manifold(setting: Setting, layout: ParameterLayout) -> SphereProduct:
    """The product of spheres (times R^k) on which theta lives under the setting's constraints."""
    blocks = []
    if setting.constraint != "none":
        for name in ("W", "W_t"):
            if name in layout.shapes:
                blocks.append(SphereBlock(layout.slice(name).start, layout.shapes[name], _AXIS[setting.constraint]))
    if setting.loss.is_field and setting.loss.predictor_constraint == "unit_rows":
        blocks.append(SphereBlock(layout.slice("P").start, layout.shapes["P"], "rows"))
    return SphereProduct.from_blocks(layout.size, blocks) if blocks else SphereProduct.euclidean(layout.size)


class PopulationLoss:
    """The loss of one setting as a function of theta (see critpoints.losses.parameters for the layout).

    For a gradient loss L:

    * ``value(theta)`` = L(theta);
    * ``euclidean_gradient`` / ``euclidean_hessian``: the ambient nabla L and nabla^2 L;
    * ``gradient`` / ``hessian``: the Riemannian ones on the constraint manifold,
      grad L = P nabla L and Hess L = P (nabla^2 L - sum_s (x_s . g_s) I_s) P
      (equal to the ambient ones without a constraint);
    * ``hessian_in_basis``: the Riemannian Hessian in an orthonormal tangent basis, whose
      eigenvalues are the spectrum used for classification.

    For ``ncl_predictor`` (a stop-gradient field F, not a gradient): ``field``,
    ``jacobian``, ``jacobian_in_basis`` and their ``euclidean_`` versions instead; ``value``
    reports the symmetric loss (L_o + L_t) / 2 (its gradient is not F).

    Attributes
    ----------
    setting : Setting
    layout : ParameterLayout
    manifold : SphereProduct
    symmetries : SymmetryGroup
    expectation : str
        The label of the expectation mode (``empirical`` for sample averages).
    measure : FiniteMeasure or None
        The finite view law the expectations sum over (None for the closed form).
    """

    def __init__(self, setting: Setting) -> None:
        if not isinstance(setting, Setting):
            raise TypeError(f"setting must be a critpoints.Setting, got {type(setting).__name__}")
        self.setting = setting
        loss = setting.loss
        self.layout = ParameterLayout.for_model(
            m=setting.m,
            p=setting.p,
            two_encoders=loss.two_encoders,
            trainable_bias=setting.trainable_bias,
            predictor=loss.is_field,
        )
        check_resources(setting)  # before anything large is allocated
        self.manifold = constraint_manifold(setting, self.layout)
        self.symmetries: SymmetryGroup = setting_symmetries(setting, self.layout)
        self.expectation = setting.expectation.describe()
        self.empirical = setting.empirical
        self.measure = self._build_measure()
        self._evaluator = self._build_evaluator()

    def _build_measure(self) -> FiniteMeasure | None:
        expectation = self.setting.expectation
        if isinstance(expectation, ClosedForm):
            return None
        if isinstance(expectation, ExactEnumeration):
            return exact_view_measure(self.setting)
        return sample_view_measure(self.setting, expectation.n, expectation.seed)

    def _build_evaluator(self):
        setting = self.setting
        if self.measure is None:
            moments = view_moments(setting)
            return ClosedFormEvaluator(
                setting.loss.name, moments.x1x1, moments.x1x2, moments.x2x2, moments.x2x2, setting.m
            )
        fixed = (setting.bias, setting.bias) if isinstance(setting.bias, np.ndarray) else None  # a fixed symrelu bias
        loss = setting.loss
        return MeasureEvaluator(
            loss.name,
            self.measure,
            encoder=setting.encoder,
            m=setting.m,
            fixed_bias=fixed,
            trainable_bias=setting.trainable_bias,
            tied=bool(loss.tied),
            temperature=loss.temperature if loss.temperature is not None else 1.0,
            normalize=loss.normalize if loss.normalize is not None else True,
        )

    # -- layout ----------------------------------------------------------------------

    @property
    def n_params(self) -> int:
        """Length of theta."""
        return self.layout.size

    @property
    def is_field(self) -> bool:
        """True for ``ncl_predictor``: use field / jacobian instead of gradient / hessian."""
        return self.setting.loss.is_field

    def pack(self, **arrays: np.ndarray) -> np.ndarray:
        """theta from the setting's blocks, e.g. ``pack(W=..., W_t=..., b=..., b_t=..., P=...)``."""
        return self.layout.pack(**arrays)

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The setting's blocks of theta as a dict of arrays."""
        return self.layout.unpack(theta)

    # -- evaluation ------------------------------------------------------------------

    def _theta(self, theta: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.layout.check(theta))

    def _require(self, field: bool, method: str) -> None:
        if self.is_field != field:
            other = "field / jacobian" if self.is_field else "gradient / hessian"
            raise TypeError(f"{method} does not apply to loss {self.setting.loss}; use {other}")

    def value(self, theta: np.ndarray) -> float:
        """L(theta) (for ncl_predictor the symmetric loss (L_o + L_t)/2)."""
        return float(self._evaluator.value(self._theta(theta)))

    def euclidean_gradient(self, theta: np.ndarray) -> np.ndarray:
        """The ambient gradient nabla L(theta)."""
        self._require(False, "euclidean_gradient")
        return self._evaluator.gradient(self._theta(theta))

    def euclidean_hessian(self, theta: np.ndarray) -> np.ndarray:
        """The ambient Hessian nabla^2 L(theta) (n x n, symmetric)."""
        self._require(False, "euclidean_hessian")
        return self._evaluator.hessian(self._theta(theta))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian gradient P nabla L on the constraint manifold."""
        return self.manifold.riemannian_gradient(theta, self.euclidean_gradient(theta))

    def euclidean_gradient_and_hessian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nabla L, nabla^2 L) from one evaluation of the kernels."""
        self._require(False, "euclidean_gradient_and_hessian")
        _, gradient, hessian = self._evaluator.value_gradient_hessian(self._theta(theta))
        return gradient, hessian

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian Hessian in ambient coordinates, P (nabla^2 L - sum_s (x_s . g_s) I_s) P."""
        theta = self._theta(theta)
        return self.manifold.riemannian_hessian(theta, *self.euclidean_gradient_and_hessian(theta))

    def hessian_in_basis(self, theta: np.ndarray) -> np.ndarray:
        """The Riemannian Hessian in an orthonormal basis of the tangent space (dim x dim)."""
        theta = self._theta(theta)
        return self.manifold.riemannian_hessian_in_basis(theta, *self.euclidean_gradient_and_hessian(theta))

    def euclidean_field(self, theta: np.ndarray) -> np.ndarray:
        """The ambient stop-gradient field F(theta) of ncl_predictor."""
        self._require(True, "euclidean_field")
        return self._evaluator.field(self._theta(theta))

    def euclidean_jacobian(self, theta: np.ndarray) -> np.ndarray:
        """The ambient Jacobian dF/dtheta (n x n, not symmetric)."""
        self._require(True, "euclidean_jacobian")
        return self._evaluator.jacobian(self._theta(theta))

    def field(self, theta: np.ndarray) -> np.ndarray:
        """The field projected on the constraint manifold, P F."""
        return self.manifold.riemannian_field(theta, self.euclidean_field(theta))

    def euclidean_field_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(F, dF/dtheta) from one evaluation of the kernels."""
        self._require(True, "euclidean_field_and_jacobian")
        return self._evaluator.field_and_jacobian(self._theta(theta))

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """The covariant derivative of P F in ambient coordinates, P (J - sum_s (x_s . F_s) I_s) P."""
        theta = self._theta(theta)
        return self.manifold.riemannian_jacobian(theta, *self.euclidean_field_and_jacobian(theta))

    def jacobian_in_basis(self, theta: np.ndarray) -> np.ndarray:
        """The covariant derivative of P F in an orthonormal tangent basis (dim x dim)."""
        theta = self._theta(theta)
        return self.manifold.riemannian_jacobian_in_basis(theta, *self.euclidean_field_and_jacobian(theta))

    def symmetry_generators(self, theta: np.ndarray) -> np.ndarray:
        """Tangent vectors (columns) of the continuous symmetries at theta."""
        return self.symmetries.generators(self._theta(theta))

    @property
    def flat_kernel_data(self) -> tuple | None:
        """The ``data`` with which the compiled kernels of critpoints.losses.closed_form
        (``flat_value``, ``flat_gradient``, ``flat_hessian``, ``flat_rotation_generators``,
        each ``f(theta, data)``) compute this loss, its gradient, Hessian and
        :meth:`symmetry_generators`; ``None`` unless they apply: a closed-form loss
        without constraint, whose one continuous symmetry is O(m)."""
        symmetries = self.symmetries
        if self.measure is not None or self.manifold.spheres or not symmetries.rotations or symmetries.scalings:
            return None
        return self._evaluator.flat_data

    def __repr__(self) -> str:
        return f"PopulationLoss({self.setting.describe()}; symmetries {self.symmetries.describe()})"


def population_loss(setting: Setting) -> PopulationLoss:
    """The loss object of ``setting``: value, gradient, Hessian (or field, Jacobian) of theta."""
    return PopulationLoss(setting)
