"""Imported by the fork server of the local pool at its start (critpoints.solver.lifeline).

Importing it inside ``multiprocessing.forkserver.main`` gives the fork server a parent-death
signal, so that it dies with the process that started it; imported anywhere else it does
nothing.
"""

from __future__ import annotations

import sys
from types import FrameType

from critpoints.solver.lifeline import set_parent_death_signal


def _inside_forkserver_main() -> bool:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


if _inside_forkserver_main():
    set_parent_death_signal()
