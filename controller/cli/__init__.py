"""The ``uedsteer`` command line.

Each command is one module of this package that adds its own sub-parser (``add_parser(sub)``)
and holds the function that runs it (the sub-parser's ``func`` default, which returns the exit
status). To add a command, write its module and name it in ``COMMANDS``, whose order is the
order of ``uedsteer --help``. What the commands share is here and in two small modules:

* :mod:`.arguments`: the catalog options and the argparse types that check a value;
* :mod:`.errors`: the one-line refusal ``uedsteer COMMAND: error: ...`` with status 2;
* :func:`main`: a ``ValueError`` or ``OSError`` out of a command is that same one line (status
  2), Ctrl-C is ``uedsteer COMMAND: interrupted`` (status 130).

The modules import only the standard library and numpy at the top; the heavy imports (torch,
bluesky, the models) are inside the run functions, so ``uedsteer --help`` and a bad argument
answer at once.
"""

from __future__ import annotations

import argparse
import sys

from . import (
    campaign,
    demo,
    facility,
    generate,
    ioc,
    ipython,
    monitor,
    phonons,
    report,
    serve,
    stem,
    train,
)
from .errors import print_error

#: The command modules, in the order ``uedsteer --help`` lists them.
COMMANDS = (
    demo,
    generate,
    campaign,
    ioc,
    serve,
    facility,
    monitor,
    ipython,
    train,
    stem,
    report,
    phonons,
)

#: The text under the usage line of ``uedsteer --help``.
DESCRIPTION = (
    "The ``uedsteer`` command line: ``demo``, ``campaign``, ``generate``, ``ioc``, ``serve``,\n"
    "``facility``, ``monitor``, ``ipython``, ``train``, ``report``, ``phonons``."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``uedsteer`` command."""
    parser = argparse.ArgumentParser(prog="uedsteer", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``uedsteer`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from uedsteer.sim_devices.epics_env import bind_client_to_loopback, loopback_environment

    # Channel Access stays on 127.0.0.1 for every command, before its work imports ophyd
    # (whose client context binds a search socket at import); --help has exited already
    loopback_environment()
    bind_client_to_loopback()
    args.argv = argv  # the command line as given, which model cards record
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print_error(args.command, err)
        return 2
    except KeyboardInterrupt:
        print(f"uedsteer {args.command}: interrupted", file=sys.stderr)
        return 130
