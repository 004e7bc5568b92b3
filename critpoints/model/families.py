"""The loss families of derivations/MODEL.md §4: one record per family, read by every layer.

Everything that differs between the losses is in a :class:`LossFamily`: whether it is
contrastive, its encoders, whether stationarity is that of a gradient or of a stop-gradient
field, its scale invariance, whether a closed form exists, the options it takes, and its
terms. Over a finite measure every loss is

    L = constant + scale * sum_n w_n phi(r_n, c_n)  [+ repulsion],

with (r_n, c_n) = (f_o(x1_n), f_t(x2_n)) the pairs of views and phi a pointwise function of
the invariants A = r.r, B = c.c, C = r.c (derivations/pointwise_losses.py, whose generated
kernels evaluate it); the repulsion of a contrastive loss couples an anchor x1 with an
independent negative x'. For the predictor family, phi is taken at (P u, sg v) and
(sg u, P v) for the online and target objectives. The evaluators (critpoints.losses, the
certificate, the dynamics) read these records and hold no list of family names: a new
loss is one :func:`register_family` call plus the derivation of its pointwise function.
"""

from __future__ import annotations

from dataclasses import dataclass

from critpoints import _validation as check

#: Repulsion terms a family may have (derivations/pointwise_losses.md §5-6):
#: ``"none"``; ``"squared_inner_product"``: + E_{x1, x'}[(f(x1).f(x'))^2] (the pointwise
#: kernel of that name, summed as <E f f^T, E f' f'^T>_F); ``"log_sum_exp"``:
#: + E_{x1}[log E_{x'}[exp(cos(f(x1), f(x')) / tau)]] (the ``exp_cosine`` kernel).
REPULSIONS = ("none", "squared_inner_product", "log_sum_exp")


@dataclass(frozen=True)
class LossOption:
    """An option a family may take, as a keyword of ``Setting`` and ``LossSpec``.

    Attributes
    ----------
    name : str
    default : bool, float or str
    kind : {"positive", "flag", "choice"}
        A real number > 0, True / False, or one of ``choices``.
    label : str
        How ``str(LossSpec)`` shows the option: formatted with ``value`` always
        (``always``), else shown only when the value is not the default.
    choices : tuple of str
    always : bool
    """

    name: str
    default: object
    kind: str
    label: str
    choices: tuple[str, ...] = ()
    always: bool = False
    minimum: float | None = None
    minimum_reason: str = ""

    def validated(self, value: object) -> object:
        """``value`` checked (through critpoints._validation), or the default for None."""
        if value is None:
            return self.default
        if self.kind == "positive":
            number = check.real(self.name, value, low=0.0, low_open=True)
            if self.minimum is not None and number < self.minimum:
                raise ValueError(
                    f"{self.name} must be >= {self.minimum:g} ({self.minimum_reason}), got {self.name}={number:g}"
                )
            return number
        if self.kind == "flag":
            return check.flag(self.name, value)
        return check.choice(self.name, value, self.choices)

    def shown(self, value: object) -> str | None:
        """The text of this option in a family's label, or None when it is not shown."""
        if self.always or value != self.default:
            return self.label.format(value=value)
        return None


#: Smallest InfoNCE temperature a setting accepts. The log-sum-exp is shifted by its largest
#: exponent s = max_j cos_j / tau, but the shift and each exponent cos_j / tau are rounded
#: in different orders of the same products and differ by up to 3.2 units of roundoff
#: u = 2^-53 of 1/tau (measured over 60,000 random pairs), so every softmax weight, and with
#: it the gradient of the log-sum-exp (of size ~1/tau), carries a relative error up to
#: delta = 4u/tau. The stationarity test asks for ||grad L|| <= 1e-10 |L| with |L| ~ 1/tau,
#: which rounding cannot meet once delta > 1e-10, at tau < 4u / 1e-10 = 4.4e-6; the bound
#: rounds that up. (The arithmetic breaks down completely near tau = 4u/745 ~ 6e-19, where
#: exp(-delta) underflows and the partition function is 0.)
MIN_TEMPERATURE = 1e-5

#: The options of the loss families, in the order labels show them.
OPTIONS: dict[str, LossOption] = {
    option.name: option
    for option in (
        LossOption(
            "temperature",
            0.5,
            "positive",
            "tau={value:g}",
            always=True,
            minimum=MIN_TEMPERATURE,
            minimum_reason=(
                "below it rounding in the log-sum-exp exceeds the accuracy the stationarity test needs; "
                "critpoints.model.families.MIN_TEMPERATURE"
            ),
        ),
        LossOption("tied", False, "flag", "tied"),
        LossOption("normalize", True, "flag", "unnormalized"),
        LossOption("predictor_constraint", "none", "choice", "P {value}", choices=("none", "unit_rows")),
    )
}


@dataclass(frozen=True)
class PairTerm:
    """``constant + scale * sum_n w_n phi(r_n, c_n)`` over the pairs of views.

    Attributes
    ----------
    kernel : str
        The pointwise function phi(A, B, C) (a name of derivations/pointwise_losses.py).
    scale : float
        Its coefficient; divided by the temperature tau when ``over_temperature``.
    constant : float
        Added to the loss (the 2 of 2 - 2 E cos; weights sum to one).
    over_temperature : bool
    kernels : str or None
        Module of the numba kernels ``<kernel>`` / ``<kernel>_table`` (None: the package's
        generated module, critpoints.losses._generated.pointwise_kernels).
    interval_kernels : str or None
        Module of the ball-arithmetic kernel ``<kernel>`` for certificates (None: the
        package's critpoints.certify._generated.interval_kernels).
    separable : bool
        phi is linear in (A, B, C) = (r.r, c.c, r.c), so the term is a sum over neurons of
        terms of one neuron each (derivations/symmetries.md items 6 (b) and 7 use it).
    """

    kernel: str
    scale: float
    constant: float = 0.0
    over_temperature: bool = False
    kernels: str | None = None
    interval_kernels: str | None = None
    separable: bool = False

    def coefficient(self, temperature: float | None) -> float:
        """The scale of phi for the given temperature."""
        if not self.over_temperature:
            return self.scale
        assert temperature is not None  # a family whose term uses it takes the option
        return self.scale / temperature


@dataclass(frozen=True)
class LossFamily:
    """One loss family of derivations/MODEL.md §4.

    Attributes
    ----------
    name : str
    summary : str
        Its definition, as shown in documentation and help texts.
    contrastive : bool
        Whether it pushes views of different inputs apart (it has a repulsion).
    encoders : {1, 2}
        One encoder f for both views, or online and target encoders f_o, f_t (unless
        ``tied``, when the family takes that option).
    pair : PairTerm
        The pair term (with ``normalize=False``: ``unnormalized_pair``).
    options : tuple of str
        The keys of :data:`OPTIONS` it takes.
    unnormalized_pair : PairTerm or None
        The pair term with raw inner products, for a family with the option ``normalize``.
    repulsion : str
        One of :data:`REPULSIONS`.
    field : bool
        Stationarity is that of a stop-gradient vector field with a linear predictor P
        (online / target objectives), not of a gradient.
    scale_invariant : bool
        Its stationary set is invariant under a positive rescaling of each encoder (the
        cosine losses; a field family also rescales P).
    closed_form : bool
        A closed-form population loss exists for linear encoders (the generated kernels
        ``<name>_value`` / ``_gradient`` / ``_hessian`` of derivations/closed_form_losses.py).
    """

    name: str
    summary: str
    contrastive: bool
    encoders: int
    pair: PairTerm
    options: tuple[str, ...] = ()
    unnormalized_pair: PairTerm | None = None
    repulsion: str = "none"
    field: bool = False
    scale_invariant: bool = False
    closed_form: bool = False

    def __post_init__(self) -> None:
        check.choice("repulsion", self.repulsion, REPULSIONS)
        for option in self.options:
            check.choice("option", option, OPTIONS)
        if self.encoders not in (1, 2):
            raise ValueError(f"encoders must be 1 or 2, got encoders={self.encoders!r} for family {self.name!r}")
        if self.contrastive != (self.repulsion != "none"):
            raise ValueError(f"family {self.name!r}: a family is contrastive exactly when it has a repulsion")
        if ("normalize" in self.options) != (self.unnormalized_pair is not None):
            raise ValueError(f"family {self.name!r}: the option normalize goes with an unnormalized_pair")
        if ("tied" in self.options or self.field) and self.encoders != 2:
            raise ValueError(f"family {self.name!r}: tied encoders and a predictor need encoders=2")
        uses_temperature = self.pair.over_temperature or self.repulsion == "log_sum_exp"
        if ("temperature" in self.options) != uses_temperature:
            raise ValueError(f"family {self.name!r}: the option temperature goes with a term that uses it")

    @property
    def option_records(self) -> tuple[LossOption, ...]:
        """The :class:`LossOption` of each option the family takes, in label order."""
        return tuple(option for name, option in OPTIONS.items() if name in self.options)

    def two_encoders(self, tied: bool | None) -> bool:
        """Whether theta holds separate online and target encoders."""
        return self.encoders == 2 and not tied

    def pair_term(self, normalize: bool | None = None) -> PairTerm:
        """The pair term for the option ``normalize`` (True when the family has no such option)."""
        if normalize is None or normalize:
            return self.pair
        assert self.unnormalized_pair is not None  # only families with the option normalize
        return self.unnormalized_pair


def register_family(family: LossFamily) -> LossFamily:
    """Add ``family`` to the registry (a new loss: this plus the derivation of its kernel).

    Raises
    ------
    ValueError
        If a family of that name is registered already.
    """
    if not isinstance(family, LossFamily):
        raise TypeError(f"family must be a LossFamily, got {type(family).__name__}")
    if family.name in _REGISTRY:
        raise ValueError(f"a loss family named {family.name!r} is registered already")
    _REGISTRY[family.name] = family
    return family


def unregister_family(name: str) -> LossFamily:
    """Remove the family ``name`` (one added by :func:`register_family`) and return it."""
    family = loss_family(name)
    if family in BUILTIN_FAMILIES:
        raise ValueError(f"loss family {name!r} is built in and cannot be unregistered")
    return _REGISTRY.pop(name)


def loss_family(name: str) -> LossFamily:
    """The registered family ``name``; a ValueError lists the known ones."""
    return _REGISTRY[check.choice("loss", name, _REGISTRY)]


def family_names() -> tuple[str, ...]:
    """The names of the registered families, in registration order."""
    return tuple(_REGISTRY)


#: The families of derivations/MODEL.md §4, registered when the package is imported.
BUILTIN_FAMILIES = (
    LossFamily(
        name="spectral",
        summary="-2 E[f(x1).f(x2)] + E[(f(x1).f(x'))^2]",
        contrastive=True,
        encoders=1,
        pair=PairTerm("inner_product", -2.0, separable=True),
        repulsion="squared_inner_product",
        closed_form=True,
    ),
    LossFamily(
        name="infonce",
        summary="-E[cos(f(x1), f(x2))]/tau + E_x1[log E_x'[exp(cos(f(x1), f(x'))/tau)]]",
        contrastive=True,
        encoders=1,
        pair=PairTerm("cosine", -1.0, over_temperature=True),
        options=("temperature",),
        repulsion="log_sum_exp",
        scale_invariant=True,
    ),
    LossFamily(
        name="ncl_squared",
        summary="E||f_o(x1) - f_t(x2)||^2",
        contrastive=False,
        encoders=2,
        pair=PairTerm("squared_distance", 1.0, separable=True),
        closed_form=True,
    ),
    LossFamily(
        name="ncl_cosine",
        summary="2 - 2 E<n(f_o(x1)), n(f_t(x2))>",
        contrastive=False,
        encoders=2,
        pair=PairTerm("cosine", -2.0, constant=2.0),
        options=("tied",),
        scale_invariant=True,
    ),
    LossFamily(
        name="ncl_predictor",
        summary="L_o = 2 - 2 E<n(P f_o(x1)), sg n(f_t(x2))>, L_t = 2 - 2 E<sg n(f_o(x1)), n(P f_t(x2))>",
        contrastive=False,
        encoders=2,
        pair=PairTerm("cosine", -2.0, constant=2.0),
        unnormalized_pair=PairTerm("inner_product", -2.0, separable=True),
        options=("normalize", "predictor_constraint"),
        field=True,
        scale_invariant=True,
    ),
)

_REGISTRY: dict[str, LossFamily] = {family.name: family for family in BUILTIN_FAMILIES}
