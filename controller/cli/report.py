"""``uedsteer report``: plots (PNG) of the frame scorer's trained models on a test store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .arguments import check_frame_stores, out_folder
from .errors import fail


def add_parser(sub: Any) -> None:
    """The ``report`` sub-command's arguments."""
    p = sub.add_parser("report", help="plots of the trained models (PNG)")
    p.add_argument("what", choices=["models"])
    p.add_argument("--data", default="data", help="folder with test.zarr (every label)")
    p.add_argument("--out", default="reports", type=out_folder, help="output folder")
    p.add_argument(
        "--weights",
        default=None,
        help="scorer folder to report, e.g. the --out of `uedsteer train cnn` and `uedsteer "
        "train vae` (default: the shipped weights)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer report models``: check the inputs, then write the plots."""
    from uedsteer.surrogates import report

    check_frame_stores(args, "--data", [Path(args.data) / "test.zarr"], report.REPORT_LABELS)
    weights = Path(args.weights) if args.weights else None
    if weights is not None:
        missing = [
            name
            for name in ("scorer.json", "vae.pt", "reference.npy", "cnn_syn.pt")
            if not (weights / name).is_file()
        ]
        if missing:
            fail(
                args,
                f"argument --weights: {args.weights!r} lacks {', '.join(missing)}; train into "
                f"it with `uedsteer train cnn --out {weights}` and `uedsteer train vae --out "
                f"{weights}`, or leave --weights out for the shipped models",
            )
    for path in report.report_models(Path(args.data), Path(args.out), weights=weights):
        print(f"wrote {path}")
    return 0
