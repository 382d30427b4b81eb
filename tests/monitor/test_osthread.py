"""osthread: the monitor's threads carry their names to the operating system (Linux)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from samos.monitor import osthread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names via /proc")


def os_name_of(name: str) -> str:
    """The OS name a thread called ``name`` has after :func:`osthread.name_current`."""
    got: list[str] = []

    def run() -> None:
        assert osthread.name_current()
        got.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    th = threading.Thread(target=run, name=name)
    th.start()
    th.join()
    return got[0]


def test_a_thread_gets_its_python_name_as_its_os_name() -> None:
    assert os_name_of("samos-decoder") == "samos-decoder"


def test_a_long_name_is_cut_to_the_15_bytes_linux_keeps() -> None:
    assert os_name_of("samos-a-very-long-thread-name") == "samos-a-very-lo"
