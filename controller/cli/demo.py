"""``uedsteer demo``: one simulated frame of each structural class as a PNG montage."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import non_negative_int, out_folder


def add_parser(sub: Any) -> None:
    """The ``demo`` sub-command's arguments."""
    p = sub.add_parser("demo", help="one frame of each structural class as a PNG montage")
    p.add_argument("--out", default="demo_output", type=out_folder, help="output folder")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer demo``: print each class's parameters, write ``montage.png``."""
    from uedsteer.sim_devices.frames import LABELS, generate_frames
    from uedsteer.sim_devices.plots import frame_montage

    quiet = {"noise_level": (0.1, 0.1), "charge_fc": (50.0, 50.0), "base_size": (40, 24)}
    reference, _ = generate_frames("ref_2H", 3, seed=args.seed + 1000, **quiet)
    frames, titles = [], []
    for label in LABELS:
        kw = {"x": 0.5} if label == "interpolated" else {}
        f, p = generate_frames(label, 1, seed=args.seed, **kw, **quiet)
        frames.append(f[0])
        extra = {
            "vacancy_2H": f"Mo {p[0]['mo_vacancy']:.0%} Te {p[0]['te_vacancy']:.0%}",
            "vacancy_1Tp": f"Mo {p[0]['mo_vacancy']:.0%} Te {p[0]['te_vacancy']:.0%}",
            "phonon_2H": p[0]["mode"],
            "phonon_1Tp": p[0]["mode"],
            "interpolated": f"x = {p[0]['x']:.2f}",
            "degraded": f"{p[0]['mo_vacancy']:.0%} vacant",
        }.get(label, "")
        titles.append(f"{label}\n{extra}")
        print(f"  {label:13s} {extra}")
    out = Path(args.out) / "montage.png"
    frame_montage(np.stack(frames), titles, reference, out)
    print(f"wrote {out}")
    return 0
