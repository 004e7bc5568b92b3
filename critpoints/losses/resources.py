"""What a setting costs before it is built: parameters, Hessian, support, couplings, memory, time.

:func:`estimate_resources` predicts, from the setting alone, the memory one process needs to
evaluate the loss and its Hessian and to run Newton on it, and the time of one Newton
iteration; :func:`check_resources` refuses a setting whose estimate exceeds its memory
limit (``Setting.max_memory_gib``) before anything is allocated, with the estimate and the
way out in the message. The models, fitted on a shared 2-core machine (one BLAS thread):

* **dense matrices**: the Hessian (or field Jacobian) has n^2 float64 entries (n the number
  of parameters); the peak of a Newton run was 6.6-9.8 times that (its tangent-basis and
  quotient copies, factorisations and the kernels' block tensors), so
  :data:`DENSE_COPIES` = 10 copies are counted;
* **finite measures** (exact enumeration, sample averages): about :data:`BYTES_PER_VIEW_COORDINATE`
  = 80 bytes per (support point, input coordinate) (measured 80-90 for p = 8..12);
* **InfoNCE couplings**: the log-sum-exp repulsion couples every anchor with every negative,
  seven P x P float64 arrays over the pool of P distinct views (P <= anchors + negatives:
  2n for a sample of n, the distinct single views of an exact enumeration), so memory and
  time grow as P^2;
* **time** per Newton iteration: one Hessian evaluation (closed form ~1.2e-9 n^2 p s;
  measure ~3.5e-8 s per (pair, neuron); InfoNCE ~2e-8 s per (P^2, neuron)) plus one
  symmetric eigendecomposition, ~4e-10 n^3 s. A restart took the time of 5 such iterations
  (closed form, compiled Newton) to 420 (InfoNCE on a sample, with line searches and
  Levenberg-Marquardt trials that stall).

The estimates are rough (within a factor of about two where measured), meant to tell a
setting that runs in seconds from one that needs a cluster or never ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from critpoints.losses.parameters import ParameterLayout
from critpoints.model.setting import ExactEnumeration, SampleAverage, Setting

#: Copies of the dense n x n matrix a Newton run holds at its peak.
DENSE_COPIES = 10

#: Bytes of a finite measure per support point and input coordinate.
BYTES_PER_VIEW_COORDINATE = 80

#: Float64 pool x pool arrays of the InfoNCE couplings.
COUPLING_ARRAYS = 7

#: Memory of the interpreter with numpy, numba and the kernels loaded, in bytes.
BASE_BYTES = 200 * 2**20

#: Fraction of the physical memory a setting may use when ``max_memory_gib`` is None.
DEFAULT_MEMORY_FRACTION = 0.8

#: Seconds per unit of work, fitted as described in the module docstring.
SECONDS_CLOSED_FORM_HESSIAN = 1.2e-9  # per n^2 p
SECONDS_MEASURE_HESSIAN = 3.5e-8  # per (pair, neuron)
SECONDS_COUPLINGS = 2e-8  # per (pool^2, neuron)
SECONDS_EIGENDECOMPOSITION = 4e-10  # per n^3

GIB = 2**30


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(setting: Setting) -> int | None:
    """The setting's memory limit in bytes: ``max_memory_gib``, else 80% of physical memory."""
    if setting.max_memory_gib is not None:
        return int(setting.max_memory_gib * GIB)
    total = physical_memory()
    return None if total is None else int(DEFAULT_MEMORY_FRACTION * total)


@dataclass(frozen=True)
class ResourceEstimate:
    """The predicted cost of one setting in one process.

    Attributes
    ----------
    n_params : int
        Length of theta.
    hessian_bytes : int
        One dense n x n float64 matrix.
    support : int
        Support points of the finite measure (0 for the closed form).
    pool : int
        Distinct views coupled by InfoNCE (0 for other losses).
    memory_bytes : int
        Predicted peak memory of one process.
    seconds_per_iteration : float
        Predicted time of one Newton iteration (one Hessian evaluation and one
        eigendecomposition).
    """

    n_params: int
    hessian_bytes: int
    support: int
    pool: int
    memory_bytes: int
    seconds_per_iteration: float

    def describe(self) -> str:
        """One line: parameters, Hessian, support, couplings, memory and time per iteration."""
        parts = [f"{self.n_params} parameters", f"Hessian {_size(self.hessian_bytes)}"]
        if self.support:
            parts.append(f"support {self.support} points")
        if self.pool:
            parts.append(f"InfoNCE couplings {self.pool}^2")
        return (
            f"estimate: {', '.join(parts)}; peak memory ~{_size(self.memory_bytes)} per process; "
            f"~{_duration(self.seconds_per_iteration)} per Newton iteration (a restart took 5-500 of them)"
        )


def _size(count: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} B"


def _duration(seconds: float) -> str:
    for unit, scale in (("days", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e6:.3g} us"


def _single_views(setting: Setting) -> int:
    """Distinct single views an exact enumeration can have (an upper bound)."""
    counts = setting.latent.support_counts(setting.d)
    return sum(codes * min(2**k, setting.augmentation.pair_pattern_count(k)) for k, codes in counts.items())


def estimate_resources(setting: Setting) -> ResourceEstimate:
    """The predicted memory and time of ``setting`` (see the module docstring for the models)."""
    loss = setting.loss
    layout = ParameterLayout.for_model(
        m=setting.m,
        p=setting.p,
        two_encoders=loss.two_encoders,
        trainable_bias=setting.trainable_bias,
        predictor=loss.is_field,
    )
    n = layout.size
    expectation = setting.expectation
    if isinstance(expectation, ExactEnumeration):
        support, pairs, pool = expectation.support_size, expectation.support_size, _single_views(setting)
    elif isinstance(expectation, SampleAverage):
        support, pairs, pool = 2 * expectation.n, expectation.n, 2 * expectation.n
    else:
        support = pairs = pool = 0
    if loss.name != "infonce":
        pool = 0
    hessian = 8 * n * n
    memory = (
        BASE_BYTES
        + DENSE_COPIES * hessian
        + BYTES_PER_VIEW_COORDINATE * setting.p * support
        + COUPLING_ARRAYS * 8 * pool * pool
    )
    if support:
        evaluation = SECONDS_MEASURE_HESSIAN * pairs * setting.m + SECONDS_COUPLINGS * pool * pool * setting.m
    else:
        evaluation = SECONDS_CLOSED_FORM_HESSIAN * n * n * setting.p
    seconds = evaluation + SECONDS_EIGENDECOMPOSITION * float(n) ** 3
    return ResourceEstimate(n, hessian, support, pool, memory, seconds)


def check_resources(setting: Setting) -> ResourceEstimate:
    """The estimate of ``setting``, or a ValueError if its memory exceeds the setting's limit.

    The message gives the estimate, the limit and how to raise it (``max_memory_gib`` of
    the Setting, ``--max-memory-gib`` on the command line).
    """
    estimate = estimate_resources(setting)
    limit = memory_limit(setting)
    if limit is not None and estimate.memory_bytes > limit:
        source = (
            f"max_memory_gib={setting.max_memory_gib:g}"
            if setting.max_memory_gib is not None
            else f"the default limit of {DEFAULT_MEMORY_FRACTION:.0%} of this machine's memory"
        )
        raise ValueError(
            f"this setting needs ~{_size(estimate.memory_bytes)} of memory per process, more than {source} "
            f"({_size(limit)}); {estimate.describe()}. Use smaller p, d, m or a smaller sample, or raise the "
            "limit with Setting(..., max_memory_gib=...) (critpoints --max-memory-gib) if the machine has the memory"
        )
    return estimate
