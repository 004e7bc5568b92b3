"""Argument checks shared by the whole package: one module, one message style.

Every check raises ``ValueError`` (``TypeError`` for a wrong type) whose message names
the parameter, repeats the value given and says what is allowed, so that a bad setting
fails at construction time instead of as a NaN or a traceback from inside a kernel.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from numbers import Integral, Real

import numpy as np


def integer(name: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise if it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value}")
    return value


def real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the stated interval, or raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    lo_bracket = "(" if low_open else "["
    hi_bracket = ")" if high_open else "]"
    allowed = f"{lo_bracket}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_bracket}"
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number in {allowed}, got {name}={value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f"{name} must lie in {allowed}, got {name}={value}")
    return value


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of the ``allowed`` names, or raise listing them."""
    allowed = tuple(allowed)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; known: {', '.join(map(repr, allowed))}")
    return value


def finite_array(
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    low: float | None = None,
) -> np.ndarray:
    """Return ``value`` as a read-only float64 array with finite entries, or raise.

    ``shape`` may leave axes free (None); ``low`` is a lower bound on every entry.
    """
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers, got {value!r}") from error
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-dimensional array, got shape {array.shape}")
    if shape is not None and (
        array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape))
    ):
        wanted = (
            "("
            + ", ".join("n" if size is None else str(size) for size in shape)
            + ("," if len(shape) == 1 else "")
            + ")"
        )
        raise ValueError(f"{name} must have shape {wanted}, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must have finite entries (no NaN or inf), got {name}={array!r}")
    if low is not None and array.size and array.min() < low:
        raise ValueError(f"{name} must have entries >= {low}, got min {name}={array.min()}")
    array.flags.writeable = False
    return array


def short_form(name: str, value: object, allowed: Iterable[str], what: str) -> tuple[str, tuple]:
    """Split a short form ``"family"`` or ``("family", *parameters)`` into (family, parameters).

    Raises TypeError for anything else (``what`` describes the other accepted forms) and
    ValueError, listing ``allowed``, for an unknown family.
    """
    if isinstance(value, str):
        family, parameters = value, ()
    elif isinstance(value, tuple) and value and isinstance(value[0], str):
        family, parameters = value[0], tuple(value[1:])
    else:
        raise TypeError(f"{name} must be a name, a tuple (name, *parameters) or {what}, got {value!r}")
    return choice(name, family, allowed), parameters


def flag(name: str, value: object) -> bool:
    """Return ``value`` as a bool, or raise if it is not True or False (a string such as "no" is refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {name}={value!r} of type {type(value).__name__}")
    return bool(value)


def seed(name: str, value: object) -> int:
    """The integer seed a run records, from an integer, None or a numpy Generator.

    An integer >= 0 is returned as an int; ``None`` draws a fresh 63-bit seed from the
    operating system; a ``numpy.random.Generator`` gives one drawn from it (advancing it).
    Either way the returned integer reproduces the run.
    """
    if value is None:
        return secrets.randbits(63)
    if isinstance(value, np.random.Generator):
        return int(value.integers(2**63))
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(
            f"{name} must be an integer >= 0, None (a fresh seed, recorded) or a numpy Generator, "
            f"got {name}={value!r} of type {type(value).__name__}"
        )
    if value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {name}={int(value)}")
    return int(value)
