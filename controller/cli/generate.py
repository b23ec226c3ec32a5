"""``uedsteer generate``: a resumable (Dask) store of synthetic UED frames (zarr) or of random
crystals' Bragg lists. Every value is validated by the store's pydantic spec before any work; a
value it refuses ends in one line naming the option (``--chunk``) or the ``--set`` key."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .arguments import non_negative_int, out_folder, positive_int, setting_pair
from .errors import fail


def add_parser(sub: Any) -> None:
    """The ``generate`` sub-command's arguments."""
    p = sub.add_parser(
        "generate",
        help="synthetic UED frames (zarr) or random crystals' Bragg lists; resumable (Dask)",
    )
    p.add_argument(
        "what",
        nargs="?",
        default="frames",
        choices=["frames", "crystals"],
        help="frames: labelled MoTe2 UED frames; crystals: pyxtal crystals + Bragg lists",
    )
    p.add_argument(
        "--out",
        required=True,
        type=out_folder,
        help="store folder, e.g. data/train.zarr; an existing store made with the same "
        "settings is resumed (frames: a larger --n-per-label extends it, the frames it holds "
        "unchanged)",
    )
    p.add_argument("--labels", default="all", help="frames: comma-separated labels or 'all'")
    p.add_argument("--n-per-label", type=positive_int, default=100, help="frames per label (>= 1)")
    p.add_argument(
        "--n-materials", type=positive_int, default=600, help="crystals: random materials (>= 1)"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="data seed (>= 0)")
    p.add_argument(
        "--chunk",
        type=positive_int,
        default=None,
        help="frames (32, at most 4096) or materials (12, at most 1000) per chunk/task",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="LocalCluster worker processes (>= 1; default: the thread budget's cores, from "
        "OMP_NUM_THREADS or the cores the process may use)",
    )
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument(
        "--set",
        action="append",
        type=setting_pair,
        metavar="KEY=JSON",
        help="override a GeneratorSettings (frames) or CrystalGenSettings (crystals) field, "
        "e.g. rotation_deg=[-60,60] or zone_axes=10",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer generate frames`` or ``uedsteer generate crystals``."""
    if args.workers is None:  # one worker process per core of the budget, one thread each
        from uedsteer.surrogates.threads import choose_thread_budget

        args.workers = choose_thread_budget().dask_workers
    return _crystals(args) if args.what == "crystals" else _frames(args)


def _frames(args: argparse.Namespace) -> int:
    """The labelled MoTe2 frame store."""
    from uedsteer.sim_devices.frame_store import DatasetSpec, write_dataset
    from uedsteer.sim_devices.frames import LABELS, GeneratorSettings

    settings = _validated(args, GeneratorSettings, _overrides(args.set))
    fields = {
        "labels": LABELS if args.labels == "all" else tuple(args.labels.split(",")),
        "n_per_label": args.n_per_label,
        "seed": args.seed,
        "chunk": 32 if args.chunk is None else args.chunk,
        "settings": settings,
    }
    options = {
        "labels": "--labels",
        "n_per_label": "--n-per-label",
        "seed": "--seed",
        "chunk": "--chunk",
    }
    spec = _validated(args, DatasetSpec, fields, options)
    out = write_dataset(args.out, spec, scheduler=args.scheduler, n_workers=args.workers)
    print(f"wrote {out}")
    return 0


def _crystals(args: argparse.Namespace) -> int:
    """The random crystals' Bragg-list store."""
    from uedsteer.sim_devices.crystals.settings import CrystalDatasetSpec, CrystalGenSettings
    from uedsteer.sim_devices.crystals.store import write_crystal_dataset

    settings = _validated(args, CrystalGenSettings, _overrides(args.set))
    fields = {
        "n_materials": args.n_materials,
        "seed": args.seed,
        "chunk": 12 if args.chunk is None else args.chunk,
        "settings": settings,
    }
    options = {"n_materials": "--n-materials", "seed": "--seed", "chunk": "--chunk"}
    spec = _validated(args, CrystalDatasetSpec, fields, options)
    out = write_crystal_dataset(args.out, spec, scheduler=args.scheduler, n_workers=args.workers)
    print(f"wrote {out}")
    return 0


def _overrides(items: list[tuple[str, Any]] | None) -> dict:
    """The ``--set`` pairs as keyword arguments (a later KEY wins)."""
    return dict(items or [])


def _validated(
    args: argparse.Namespace, model: Any, fields: dict, options: dict[str, str] | None = None
) -> Any:
    """``model(**fields)``; a validation error stops with one line naming the option.

    ``options`` maps a field to its command-line option (``{"chunk": "--chunk"}``); every other
    field came from ``--set KEY=JSON``.
    """
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(part) for part in first["loc"]]
        msg = first["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]  # pydantic's "Input should be ..."
        key = loc[0] if loc else ""
        if key in (options or {}):
            value = getattr(args, key, fields.get(key))
            text = value if isinstance(value, str) else json.dumps(value)
            said = msg if text in msg else f"{text} is not allowed: {msg}"
            fail(args, f"argument {options[key]}: {said}")
        if first["type"] == "extra_forbidden" and len(loc) == 1:
            allowed = ", ".join(model.model_fields)
            fail(args, f"argument --set: {key!r} is not a setting; allowed: {allowed}")
        text = json.dumps(fields.get(key), separators=(",", ":"))
        inner = f" ({'.'.join(loc)})" if len(loc) > 1 else ""
        said = msg if f"{key}=" in msg else f"{key}={text}{inner} is not allowed: {msg}"
        fail(args, f"argument --set: {said}")
