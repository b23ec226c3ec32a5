"""``uedsteer ioc``: the simulated beamline served as EPICS process variables.

The command keeps Channel Access on this machine before anything starts
(:func:`uedsteer.sim_devices.epics_env.loopback_environment`: it searches, listens and beacons
on 127.0.0.1 only), builds a :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline` on the
sample asked for, prints the prefix, the Channel Access settings and the PV list once the
server listens, and serves until SIGINT (Ctrl-C) or SIGTERM, which end it with status 0.
``EPICS_CA_SERVER_PORT`` (default 5064) picks the port, as for any IOC. ``--state FILE`` keeps
the settings, spot and shutter across a restart (:mod:`uedsteer.sim_devices.ioc_state`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .arguments import add_simulation_arguments, positive_int, pv_prefix
from .errors import fail


def add_parser(sub: Any) -> None:
    """The ``ioc`` sub-command's arguments."""
    p = sub.add_parser(
        "ioc", help="serve the simulated beamline as EPICS PVs (Channel Access on 127.0.0.1)"
    )
    p.add_argument("--prefix", required=True, type=pv_prefix, help="PV prefix, e.g. 'UED:'")
    add_simulation_arguments(p)
    p.add_argument("--spots", type=positive_int, default=100, help="spots on the simulated sample")
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="FILE",
        help="keep the settings, spot and shutter in FILE across restarts, as hardware does: "
        "restored at start when it exists, saved on every put",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer ioc`` (module docstring); returns the exit status."""
    from uedsteer.sim_devices.epics_env import LOOPBACK_ENVIRONMENT, loopback_environment

    loopback_environment()  # before caproto reads a single variable
    import asyncio
    import os
    import signal

    # The simulated devices are soft ophyd signals: no Channel Access client in this process
    # (ophyd's caproto layer would open a UDP socket for searches when ophyd is imported).
    os.environ["OPHYD_CONTROL_LAYER"] = "dummy"

    from uedsteer.sim_devices.beamline import SimulatedBeamline
    from uedsteer.sim_devices.ioc import beamline_ioc, serve
    from uedsteer.sim_devices.response import ResponseParams

    response = ResponseParams() if args.sample is None else ResponseParams.random(args.sample)
    beamline = SimulatedBeamline(response, seed=args.seed, n_spots=args.spots)
    try:
        ioc = beamline_ioc(beamline, args.prefix, state_file=args.state)
    except ValueError as err:
        fail(args, str(err))
    sample = "defaults" if args.sample is None else f"random({args.sample})"

    def ready() -> None:
        port = os.environ.get("EPICS_CA_SERVER_PORT", "5064")
        print(f"uedsteer ioc: prefix {args.prefix}; simulated sample {sample}, seed {args.seed}")
        print("channel access: " + " ".join(f"{k}={v}" for k, v in LOOPBACK_ENVIRONMENT.items()))
        print(f"serving on 127.0.0.1, port {port}; Ctrl-C or SIGTERM stops it")
        for key, name in ioc.pv_names.items():
            print(f"  {name:<40} {key}")
        print("ready", flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        await serve(ioc, stop, on_ready=ready)

    try:
        asyncio.run(main())
    except RuntimeError as err:  # the server could not start
        fail(args, str(err))
    print("uedsteer ioc: stopped", flush=True)
    return 0
