"""The setting: everything that defines one population loss landscape (derivations/MODEL.md §1–5).

A :class:`Setting` holds (p, d, m, dictionary, latent, noise, augmentation, encoder,
bias, constraint, loss, expectation mode). It validates and stores; it knows nothing of
evaluators or solvers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from critpoints import _validation as check
from critpoints._files import ResultFileError
from critpoints.model.augmentation import Augmentation, parse_augmentation
from critpoints.model.dictionary import Dictionary, GivenDictionary, parse_dictionary
from critpoints.model.families import OPTIONS, LossFamily, family_names, loss_family
from critpoints.model.latent import Latent, parse_latent

ENCODERS = ("linear", "symrelu")
CONSTRAINTS = ("none", "unit_rows", "unit_columns")
PREDICTOR_CONSTRAINTS = OPTIONS["predictor_constraint"].choices
EXPECTATIONS = ("auto", "closed_form", "exact_enumeration", "sample_average")

#: The loss families registered when the package is imported (critpoints.model.families).
LOSSES = family_names()

#: Default largest number of (z, D1, D2) patterns an exact enumeration may visit.
DEFAULT_MAX_SUPPORT_SIZE = 1_000_000

#: Default InfoNCE temperature.
DEFAULT_TEMPERATURE = OPTIONS["temperature"].default


@dataclass(frozen=True)
class LossSpec:
    """A loss family of derivations/MODEL.md §4 (critpoints.model.families) with its options.

    Attributes
    ----------
    name : str
        A registered family (:func:`~critpoints.model.families.family_names`).
    temperature : float or None
        tau > 0 for the families that take it (``infonce``); None for the others.
    tied : bool or None
        One encoder for both views (``ncl_cosine``: SimSiam without predictor).
    normalize : bool or None
        Cosine (True) or raw inner products (False), for ``ncl_predictor``.
    predictor_constraint : str or None
        ``"none"`` or ``"unit_rows"`` on P, for ``ncl_predictor``.

    An option the family does not take must be None; one it takes defaults to the value
    in :data:`~critpoints.model.families.OPTIONS`.
    """

    name: str
    temperature: float | None = None
    tied: bool | None = None
    normalize: bool | None = None
    predictor_constraint: str | None = None

    def __post_init__(self) -> None:
        family = loss_family(self.name)
        for option in OPTIONS.values():
            value = getattr(self, option.name)
            if option.name in family.options:
                object.__setattr__(self, option.name, option.validated(value))
            elif value is not None:
                takers = [name for name in family_names() if option.name in loss_family(name).options]
                owners = " or ".join(f"loss={name!r}" for name in takers)
                raise ValueError(
                    f"{option.name}= applies only to {owners}, got loss={self.name!r}, {option.name}={value!r}"
                )

    @property
    def family(self) -> LossFamily:
        """The registered record of this loss family."""
        return loss_family(self.name)

    @property
    def contrastive(self) -> bool:
        """Whether the loss pushes views of different inputs apart."""
        return self.family.contrastive

    @property
    def two_encoders(self) -> bool:
        """Whether the loss has separate online and target encoders."""
        return self.family.two_encoders(self.tied)

    @property
    def is_field(self) -> bool:
        """Whether stationarity is that of a stop-gradient field rather than a gradient."""
        return self.family.field

    def __str__(self) -> str:
        texts = [option.shown(getattr(self, option.name)) for option in self.family.option_records]
        shown = [text for text in texts if text is not None]
        return f"{self.name}({', '.join(shown)})" if shown else self.name


@dataclass(frozen=True)
class ClosedForm:
    """E[.] as a polynomial in the parameters with the view moments as coefficients."""

    name = "closed_form"

    def describe(self) -> str:
        """The label printed with results."""
        return "population (closed form)"


@dataclass(frozen=True)
class ExactEnumeration:
    """E[.] as a finite weighted sum over the exact support of the view law."""

    support_size: int
    name = "exact_enumeration"

    def describe(self) -> str:
        """The label printed with results."""
        return f"population (exact enumeration over {self.support_size} (z, D1, D2) patterns)"


@dataclass(frozen=True)
class SampleAverage:
    """E[.] replaced by the average over a fixed draw of n (z, D1, D2, x') tuples: *empirical*."""

    n: int
    seed: int
    name = "sample_average"

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", check.integer("sample_average n", self.n, minimum=1))
        object.__setattr__(self, "seed", check.integer("sample_average seed", self.seed, minimum=0))

    def describe(self) -> str:
        """The label printed with results."""
        return f"empirical (sample average over n={self.n} draws, seed={self.seed})"


Expectation = ClosedForm | ExactEnumeration | SampleAverage


@dataclass(frozen=True, eq=False, kw_only=True)
class Setting:
    """One population-loss landscape of derivations/MODEL.md: data model, augmentation, encoder, loss, E-mode.

    Parameters
    ----------
    p, d, m : int
        Input dimension, number of dictionary atoms, number of neurons (p >= d >= 1, m >= 1).
    dictionary : "identity", ("random", seed), array (p, d) or a dictionary object
        The ground truth M with orthonormal columns.
    latent : "one_hot", ("one_hot", "positive"), ("fixed_count", k, k_neg), ("bernoulli", prob)
        or a latent object. The law of z in {-1, 0, 1}^d.
    noise : float
        sigma >= 0 of the Gaussian noise xi ~ N(0, sigma^2 I_p).
    augmentation : ("independent_mask", q) or "complementary_mask" or an augmentation object
        q in [0, 1) is the drop probability.
    encoder : "linear" or "symrelu"
        f(x) = W x, or f_i(x) = sigma_{b_i}(w_i . x) with
        sigma_b(t) = ReLU(t + b) - ReLU(-t + b).
    bias : None, float, array of m floats, or "trainable"
        symrelu only; None means a fixed bias of 0.
    constraint : "none", "unit_rows" or "unit_columns"
        Weight constraint (a product of unit spheres) on each encoder.
    loss : str or LossSpec
        A registered loss family (critpoints.model.families); its options are the
        keywords ``temperature`` (infonce), ``tied`` (ncl_cosine), ``normalize`` and
        ``predictor_constraint`` (ncl_predictor).
    expectation : "auto", "closed_form", "exact_enumeration" or ("sample_average", n, seed)
        How E[.] is computed. ``"auto"`` takes the closed form where it applies (linear
        encoder, a family with a closed form), else exact enumeration where it
        applies (M = I, sigma = 0, support within ``max_support_size``), else raises
        asking for a sample average.
    max_support_size : int
        Largest number of (z, D1, D2) patterns an exact enumeration may visit.
    max_memory_gib : float or None
        Largest estimated memory, in GiB, one process may need for this setting
        (critpoints.losses.resources); None: 80% of the machine's physical memory. Checked
        when the loss is built, before anything large is allocated.
    """

    # The attributes hold the parsed objects; the constructor takes the short forms (the
    # signature below, for type checkers; at run time the dataclass's own __init__).
    p: int
    d: int
    m: int
    loss: LossSpec
    dictionary: Dictionary = "identity"  # type: ignore[assignment]
    latent: Latent = "one_hot"  # type: ignore[assignment]
    noise: float = 0.0
    augmentation: Augmentation = ("independent_mask", 0.5)  # type: ignore[assignment]
    encoder: str = "linear"
    bias: np.ndarray | str | None = None
    constraint: str = "none"
    expectation: Expectation = "auto"  # type: ignore[assignment]
    temperature: float | None = field(default=None, repr=False)
    tied: bool | None = field(default=None, repr=False)
    normalize: bool | None = field(default=None, repr=False)
    predictor_constraint: str | None = field(default=None, repr=False)
    max_support_size: int = field(default=DEFAULT_MAX_SUPPORT_SIZE, repr=False)
    max_memory_gib: float | None = field(default=None, repr=False)

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            p: int,
            d: int,
            m: int,
            loss: str | LossSpec,
            dictionary: object = "identity",
            latent: object = "one_hot",
            noise: float = 0.0,
            augmentation: object = ("independent_mask", 0.5),
            encoder: str = "linear",
            bias: object = None,
            constraint: str = "none",
            expectation: object = "auto",
            temperature: float | None = None,
            tied: bool | None = None,
            normalize: bool | None = None,
            predictor_constraint: str | None = None,
            max_support_size: int = DEFAULT_MAX_SUPPORT_SIZE,
            max_memory_gib: float | None = None,
        ) -> None: ...

    def __post_init__(self) -> None:
        store = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        d = check.integer("d", self.d, minimum=1)
        p = check.integer("p", self.p, minimum=1)
        if p < d:
            raise ValueError(f"p must be >= d (the dictionary has orthonormal columns), got p={p}, d={d}")
        store("p", p)
        store("d", d)
        store("m", check.integer("m", self.m, minimum=1))
        store("max_support_size", check.integer("max_support_size", self.max_support_size, minimum=1))
        if self.max_memory_gib is not None:
            store("max_memory_gib", check.real("max_memory_gib", self.max_memory_gib, low=0.0, low_open=True))

        store("dictionary", parse_dictionary(self.dictionary))
        self.dictionary.matrix(p, d)  # validates shape, orthonormality, identity needs p == d
        store("latent", parse_latent(self.latent))
        self.latent.validate(d)
        store("noise", check.real("noise", self.noise, low=0.0))
        store("augmentation", parse_augmentation(self.augmentation))
        store("encoder", check.choice("encoder", self.encoder, ENCODERS))
        store("bias", self._parse_bias(self.bias))
        store("constraint", check.choice("constraint", self.constraint, CONSTRAINTS))

        given = {name: getattr(self, name) for name in OPTIONS}
        if isinstance(self.loss, LossSpec):
            extra = {name: value for name, value in given.items() if value is not None}
            if extra:
                raise ValueError(f"pass loss parameters either in the LossSpec or as keywords, not both: {extra}")
            spec = self.loss
        else:
            spec = LossSpec(self.loss, **given)
        store("loss", spec)
        for name in OPTIONS:
            store(name, getattr(spec, name))
        store("expectation", self._resolve_expectation(self.expectation))

    # -- parsing helpers --------------------------------------------------------------

    def _parse_bias(self, bias: Any) -> np.ndarray | str | None:
        if self.encoder == "linear":
            if bias is not None:
                raise ValueError(
                    f"bias applies only to encoder='symrelu'; encoder='linear' has no bias, got bias={bias!r}"
                )
            return None
        if bias is None:
            bias = 0.0
        if isinstance(bias, str):
            if bias != "trainable":
                raise ValueError(
                    f"bias must be a number, an array of m={self.m} numbers or 'trainable', got bias={bias!r}"
                )
            return bias
        if np.ndim(bias) == 0:
            bias = np.full(self.m, check.real("bias", bias))
        array = check.finite_array("bias", bias, ndim=1)
        if array.shape != (self.m,):
            raise ValueError(f"bias must be a number or an array of m={self.m} numbers, got shape {array.shape}")
        return array

    def _resolve_expectation(self, value: object) -> Expectation:
        if isinstance(value, SampleAverage):
            return value
        if isinstance(value, (ClosedForm, ExactEnumeration)):
            value = value.name  # re-checked against this setting below
        if isinstance(value, tuple) and value and value[0] == "sample_average":
            if len(value) != 3:
                raise ValueError(f"expectation must be ('sample_average', n, seed), got {value!r}")
            return SampleAverage(value[1], value[2])
        if isinstance(value, tuple):
            raise ValueError(f"expectation tuple must be ('sample_average', n, seed), got {value!r}")
        mode = check.choice("expectation", value, EXPECTATIONS)
        if mode == "sample_average":
            raise ValueError("expectation='sample_average' needs a size and a seed: ('sample_average', n, seed)")
        closed_form_reason = self._closed_form_obstacle()
        enumeration_reason = self._enumeration_obstacle()
        if mode == "closed_form":
            if closed_form_reason:
                raise ValueError(f"expectation='closed_form' does not apply: {closed_form_reason}")
            return ClosedForm()
        if mode == "exact_enumeration":
            if enumeration_reason:
                raise ValueError(f"expectation='exact_enumeration' does not apply: {enumeration_reason}")
            return ExactEnumeration(enumeration_size(self))
        if closed_form_reason is None:
            return ClosedForm()
        if enumeration_reason is None:
            return ExactEnumeration(enumeration_size(self))
        raise ValueError(
            "expectation='auto' found no exact mode: the closed form does not apply "
            f"({closed_form_reason}) and exact enumeration does not apply ({enumeration_reason}); "
            "pass expectation=('sample_average', n, seed) for an empirical average over a fixed draw"
        )

    def _closed_form_obstacle(self) -> str | None:
        """Why the closed form does not apply, or None if it does."""
        if self.encoder != "linear" or not self.loss.family.closed_form:
            losses = " or ".join(repr(name) for name in family_names() if loss_family(name).closed_form)
            return f"it needs encoder='linear' and loss {losses}, got encoder={self.encoder!r}, loss={self.loss.name!r}"
        return None

    def _enumeration_obstacle(self) -> str | None:
        """Why exact enumeration does not apply, or None if it does."""
        if self.noise != 0:
            return f"it needs noise=0 (a finite view law), got noise={self.noise}"
        if not self.dictionary.is_identity(self.p, self.d):
            return f"it needs the identity dictionary (a finite view law), got {self._dictionary_label()}"
        size = enumeration_size(self)
        if size > self.max_support_size:
            return (
                f"the support has {size} (z, D1, D2) patterns, more than max_support_size={self.max_support_size}; "
                "raise max_support_size or use expectation=('sample_average', n, seed)"
            )
        return None

    def _dictionary_label(self) -> str:
        if isinstance(self.dictionary, GivenDictionary):
            return "a user array that is not the identity"
        return f"dictionary={self.dictionary!r}"

    # -- public helpers ---------------------------------------------------------------

    def dictionary_matrix(self) -> np.ndarray:
        """The ground-truth dictionary M (p x d, orthonormal columns)."""
        return self.dictionary.matrix(self.p, self.d)

    @property
    def trainable_bias(self) -> bool:
        """Whether the symrelu bias is a parameter."""
        return isinstance(self.bias, str)

    @property
    def empirical(self) -> bool:
        """Whether expectations are sample averages (never population values)."""
        return isinstance(self.expectation, SampleAverage)

    def to_dict(self) -> dict:
        """The setting as JSON-ready data; :meth:`from_dict` rebuilds an equal setting.

        Every component is stored in the short form ``Setting`` accepts (arrays as nested
        lists, tuples as lists); the expectation mode as resolved (``"closed_form"``,
        ``"exact_enumeration"`` or ``["sample_average", n, seed]``).
        """
        expectation = self.expectation
        return {
            "p": self.p,
            "d": self.d,
            "m": self.m,
            "loss": self.loss.name,
            "temperature": self.temperature,
            "tied": None if self.tied is None else bool(self.tied),
            "normalize": None if self.normalize is None else bool(self.normalize),
            "predictor_constraint": self.predictor_constraint,
            "dictionary": self.dictionary.short_form(),
            "latent": self.latent.short_form(),
            "noise": self.noise,
            "augmentation": self.augmentation.short_form(),
            "encoder": self.encoder,
            "bias": self.bias.tolist() if isinstance(self.bias, np.ndarray) else self.bias,
            "constraint": self.constraint,
            "expectation": (
                ["sample_average", expectation.n, expectation.seed]
                if isinstance(expectation, SampleAverage)
                else expectation.name
            ),
            "max_support_size": self.max_support_size,
            "max_memory_gib": self.max_memory_gib,
        }

    @classmethod
    def from_dict(cls, record: dict, source: str | Path | None = None) -> Setting:
        """The setting that :meth:`to_dict` described (validated like any other).

        With ``source`` (the file the record was read from) an invalid record raises
        :class:`critpoints._files.ResultFileError` naming that file, instead of the
        ValueError or TypeError of the argument it fails on.
        """
        record = dict(record)
        expectation = record.get("expectation", "auto")
        if isinstance(expectation, list):
            record["expectation"] = tuple(expectation)
        if source is None:
            return cls(**record)
        try:
            return cls(**record)
        except (TypeError, ValueError) as error:
            raise ResultFileError(f"{source}: the stored setting is not valid: {error}") from error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Setting) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def describe(self) -> str:
        """A one-line human-readable summary, with the expectation mode."""
        if isinstance(self.bias, np.ndarray):
            values = np.unique(self.bias)
            bias = f" bias={values[0]:g}" if len(values) == 1 else " bias=per-neuron"
        else:
            bias = " bias=trainable" if self.bias == "trainable" else ""
        return (
            f"p={self.p} d={self.d} m={self.m} loss={self.loss} encoder={self.encoder}{bias} "
            f"constraint={self.constraint} latent={self.latent} augmentation={self.augmentation} "
            f"noise={self.noise:g}; E = {self.expectation.describe()}"
        )


def enumeration_size(setting: Setting) -> int:
    """Number of (z, D1, D2) patterns the exact enumeration visits (before merging equal pairs).

    sum over codes z of the number of mask-pair patterns on the support of z.
    """
    counts = setting.latent.support_counts(setting.d)
    return sum(codes * setting.augmentation.pair_pattern_count(k) for k, codes in counts.items())
