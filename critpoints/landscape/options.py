"""Checks of the options shared by the landscape's entry points (enumeration, minima search, graph).

Each check raises the ValueError / TypeError of critpoints._validation, naming the option, its
value and what is allowed, before any work starts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from critpoints import _validation as check
from critpoints.solver.newton import NewtonOptions


def newton_options(solver_options: dict[str, Any], **defaults: Any) -> NewtonOptions:
    """The :class:`NewtonOptions` of the keyword arguments ``solver_options`` (``defaults`` for the
    fields not given); an unknown field is a ValueError listing the known ones."""
    known = {field.name for field in dataclasses.fields(NewtonOptions)}
    unknown = sorted(set(solver_options) - known)
    if unknown:
        raise ValueError(f"unknown solver option(s) {unknown}; known: {sorted(known)}")
    return NewtonOptions(**{**defaults, **solver_options})


def thresholds(tau_good: object, eigenvalue_tolerance: object, orbit_tolerance: object) -> tuple[float, float, float]:
    """(tau_good in (0, 1], eigenvalue_tolerance in (0, 1), orbit_tolerance in (0, 1)) as floats."""
    return (
        check.real("tau_good", tau_good, low=0.0, high=1.0, low_open=True),
        check.real("eigenvalue_tolerance", eigenvalue_tolerance, low=0.0, high=1.0, low_open=True, high_open=True),
        check.real("orbit_tolerance", orbit_tolerance, low=0.0, high=1.0, low_open=True, high_open=True),
    )
