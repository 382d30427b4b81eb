"""Threads named for the operating system too, so that ``top -H``, ``ps -L``, ``py-spy`` and
``/proc/PID/task/*/comm`` (read by ``samos bench soak``) tell the monitor's threads apart.

:func:`name_current` gives the calling thread its Python name as its OS name (Linux
``prctl(PR_SET_NAME)``, at most 15 bytes, so the monitor's threads have names that fit); elsewhere it
does nothing. The main thread keeps its name: it is the process's name.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from functools import cache
from typing import Any

PR_SET_NAME = 15
MAX_NAME_BYTES = 15
"""Linux keeps 16 bytes of a thread's name, its terminating NUL included."""


@cache
def _prctl() -> Any:
    """libc's ``prctl`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


def name_current() -> bool:
    """Give the calling thread its Python name (cut to 15 bytes) as its OS name; True when the OS
    took it."""
    prctl = _prctl()
    if prctl is None:
        return False
    name = threading.current_thread().name.encode("utf-8", "replace")[:MAX_NAME_BYTES]
    return prctl(PR_SET_NAME, name, 0, 0, 0) == 0
