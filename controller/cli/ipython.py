"""``uedsteer ipython``: an IPython session with a RunEngine, the simulated beamline, the plans
and a catalog (:mod:`uedsteer.plans.session`)."""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import add_catalog_arguments


def add_parser(sub: Any) -> None:
    """The ``ipython`` sub-command's arguments."""
    p = sub.add_parser("ipython", help="IPython with RunEngine, simulated beamline, plans, catalog")
    add_catalog_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated beamline")
    p.add_argument(
        "ipython_args",
        nargs=argparse.REMAINDER,
        help="passed to IPython after '--', e.g. -- --simple-prompt",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer ipython`` until the user leaves IPython."""
    from uedsteer.plans.session import start_ipython

    start_ipython(args.catalog, args.seed, ipython_args=args.ipython_args, api_key=args.api_key)
    return 0
