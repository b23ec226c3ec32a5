"""How a command refuses: one line ``uedsteer COMMAND: error: MESSAGE`` on stderr and exit
status 2, the same line argparse writes for a bad argument, and never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


def print_error(command: str, message: object) -> None:
    """Write the one error line of ``uedsteer COMMAND`` to stderr."""
    print(f"uedsteer {command}: error: {message}", file=sys.stderr)


def fail(args: argparse.Namespace, message: str) -> NoReturn:
    """Stop with ``uedsteer COMMAND: error: MESSAGE`` on stderr and status 2, as argparse does."""
    print_error(args.command, message)
    raise SystemExit(2)
