"""What several commands share about their arguments: the catalog options, the simulated
beamline's options, the argparse ``type``s that check a value (argparse then names the option in
its one-line error: numbers, ports, PV prefixes, output paths), and the check of a frame store
named on the command line."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import fail


def add_catalog_arguments(p: argparse.ArgumentParser, default: str = "uedsteer_catalog") -> None:
    """``--catalog`` (folder or Tiled URL) and ``--api-key``, the same in every command."""
    p.add_argument(
        "--catalog",
        default=default,
        help="catalog folder, or a Tiled server address http(s)://HOST:PORT/api/v1",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="API key of a Tiled server (default: the TILED_API_KEY environment variable)",
    )


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse names the option on error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed: use an integer >= {minimum}"
            )
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def tcp_port(free: bool = False) -> Callable[[str], int]:
    """An argparse ``type``: a TCP port from 1 to 65535, or with ``free`` also 0 (the server
    takes a free one)."""
    low = 0 if free else 1
    allowed = "a port from 1 to 65535" + (", or 0 for a free one" if free else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not low <= value <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use {allowed}")
        return value

    return parse


PV_PREFIX = re.compile(r"[A-Za-z0-9_:.\-]+")
"""The characters a PV prefix may hold (EPICS record names: letters, digits, ``_ - : .``)."""


def oversample(text: str) -> int:
    """An argparse ``type`` for ``--oversample``: samples per pixel edge, an odd integer
    (:func:`~uedsteer.sim_devices.physics.kinematic.check_oversample`)."""
    from uedsteer.sim_devices.physics.kinematic import check_oversample

    try:
        value: int | str = int(text)
    except ValueError:
        value = text
    try:
        return check_oversample(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pv_prefix(text: str) -> str:
    """An argparse ``type``: a non-empty PV prefix of the characters EPICS allows in a record
    name."""
    if not PV_PREFIX.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: use letters, digits and _ - : . (e.g. 'UED:')"
        )
    return text


def add_simulation_arguments(p: argparse.ArgumentParser, whose: str = "") -> None:
    """``--sample`` and ``--seed`` of the simulated beamline (``uedsteer ioc``, ``uedsteer
    facility up``); ``whose`` starts the sample's help (``"the IOC's "``)."""
    p.add_argument(
        "--sample",
        type=non_negative_int,
        default=None,
        help=f"{whose}simulated sample ResponseParams.random(SAMPLE) instead of the defaults",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the simulated beamline"
    )


def number(
    low: float, high: float = float("inf"), open_low: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [low, high], or (low, high] with ``open_low``."""
    allowed = f"a number {'>' if open_low else '>='} {low:g}" + (
        f" and <= {high:g}" if high < float("inf") else ""
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        inside = (value > low if open_low else value >= low) and value <= high
        if not (inside and np.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use {allowed}")
        return value

    return parse


def setting_pair(text: str) -> tuple[str, Any]:
    """An argparse ``type`` for ``--set KEY=JSON``: the pair (KEY, decoded JSON)."""
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key, json.loads(value)
    except ValueError:  # JSONDecodeError too
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: use KEY=VALUE with VALUE as JSON, e.g. noise_level=[0,0.5]"
        ) from None


def out_folder(text: str) -> str:
    """An argparse ``type`` for an output folder: a new or existing folder, not a file."""
    path = Path(text).expanduser()
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"lies inside the file {str(p)!r}"
            raise argparse.ArgumentTypeError(
                f"{text!r} {where}: give a folder (new or existing) for the output"
            )
    return text


def out_file(text: str) -> str:
    """An argparse ``type`` for an output file: not an existing folder, not inside a file."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder: give a file name (.npz)")
    for p in path.parents:
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(
                f"{text!r} lies inside the file {str(p)!r}: give a file in a folder"
            )
    return text


def check_frame_stores(
    args: argparse.Namespace, option: str, stores: list[Path], labels: tuple[str, ...] = ()
) -> None:
    """Stop with one line naming ``option`` unless every store is finished and has ``labels``."""
    from uedsteer.sim_devices.frame_store import check_store

    for store in stores:
        try:
            check_store(store, labels)
        except FileNotFoundError:
            what = (
                f"{args.data!r} has no {store.name} ({store} does not exist)"
                if option == "--data"
                else f"{str(store)!r} does not exist"
            )
            fix = f"make it with `uedsteer generate --out {store}`"
            fail(args, f"argument {option}: {what}; {fix}")
        except ValueError as err:
            fail(args, f"argument {option}: {err}")
