"""``uedsteer phonons``: compute the MoTe2 phonon table that ships as package data (needs the
optional extra ``phonons``, i.e. CHGNet)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .arguments import out_file, positive_int


def add_parser(sub: Any) -> None:
    """The ``phonons`` sub-command's arguments."""
    p = sub.add_parser("phonons", help="compute the MoTe2 phonon table (needs extra 'phonons')")
    p.add_argument(
        "--out", default=None, type=out_file, help="the .npz file (default: the package data file)"
    )
    p.add_argument(
        "--supercell",
        type=positive_int,
        nargs=3,
        default=(6, 6, 1),
        metavar=("NA", "NB", "NC"),
        help="phonopy supercell (each >= 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer phonons``: print each phase's frequency ranges, write the table."""
    from uedsteer.sim_devices.phonon_calc import compute_phonon_table, default_output

    out = Path(args.out) if args.out else default_output()
    summary = compute_phonon_table(out, supercell=tuple(args.supercell))
    for phase, ranges in summary.items():
        for q, (lo, hi) in ranges.items():
            print(f"  {phase:4s} {q:6s} {lo:7.1f} … {hi:7.1f} cm⁻¹")
    print(f"wrote {out}")
    return 0
