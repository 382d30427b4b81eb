"""One error convention for every command (``samos ...`` and ``monitor``).

- exit 0: done;
- exit 1 (:data:`EXIT_FAILURE`): the command was valid but the work failed at run time (an input
  that could not be scored, a port in use, a backend that does not answer, a failed verification);
- exit 2 (:data:`EXIT_USAGE`): the command cannot run as given: an unknown flag, a bad value, a
  named file that does not exist or is not the right kind of file, a device or execution provider
  that is not available here (:class:`UsageError`, :class:`samos.config.ConfigError` and the
  commands' own checks);
- exit 130: interrupted (Ctrl-C).

Either way stderr gets one line, ``PROG: message``, naming the bad value and what would be valid.
A traceback is printed only with ``-v`` / ``--verbose``; without it an unexpected exception is one
line too (its type and message). Torch-free.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from typing import TextIO

from samos.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """The command cannot run as given (exit 2): a bad value, a missing or wrong file, ..."""


def one_line(e: BaseException) -> str:
    """The exception's message on one line (whitespace runs collapsed)."""
    return " ".join(str(e).split()) or type(e).__name__


def report(prog: str, message: str, code: int, stream: TextIO | None = None) -> int:
    """Print ``PROG: message`` to stderr and return ``code``."""
    print(f"{prog}: {message}", file=stream or sys.stderr, flush=True)
    return code


def run_command(prog: str, run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """``run(args)`` under the convention: usage errors exit 2, other exceptions 1, Ctrl-C 130."""
    verbose = bool(getattr(args, "verbose", False))
    try:
        return int(run(args) or EXIT_OK)
    except KeyboardInterrupt:
        return report(prog, "interrupted", EXIT_INTERRUPTED)
    except (UsageError, ConfigError) as e:
        if verbose:
            traceback.print_exc()
        return report(prog, one_line(e), EXIT_USAGE)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if verbose:
            traceback.print_exc()
            return report(prog, f"error: {type(e).__name__}: {one_line(e)}", EXIT_FAILURE)
        return report(
            prog, f"error: {type(e).__name__}: {one_line(e)} (run with -v for the traceback)", EXIT_FAILURE
        )
