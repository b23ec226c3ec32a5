"""Crystal-prediction benchmark: speed of featurization and prediction, accuracy on fresh crystals.

Generates ``--materials`` new random crystals from ``--seed`` (a seed the model was not trained
on, so every material is new: the test set is material-disjoint by construction), simulates
their dynamical Bragg lists (Bloch waves, 20 nm, 300 kV) along symmetry-distinct zone axes,
and scores them with the crystal model (:meth:`CrystalPredictor.load`: the user's model from
``uedsteer train crystal`` when there is one, else the shipped one).
Prints patterns per second for :func:`radial_basis` and for ``predict``, the crystal-system
accuracy of single patterns and of 10-pattern aggregates, per-system space-group accuracy and
lattice errors, the headline figures again with spot positions moved by a measurement's error
(``--position-errors``), and how 2H and 1T' MoTe2 UED frames read. First, generation speed:
patterns/s of the previous and the current Bloch-wave pipeline on ``--generation-materials``
materials of the same settings, in this one process (``bench_crystal_generation.py``).
Goals (issue 32): crystal system ≥ 0.67 single, ≥ 0.85 with 10-pattern aggregation; cubic
space group ≥ 0.85; generation ≥ 3× faster per pattern, same lists.

Run: ``.venv/bin/python benchmarks/bench_crystal.py --seed 9001 --materials 240``; on real
structure types (AFLOW prototypes only) add ``--seed 9002 --set 'sources={"prototype":1.0}'``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crystal_generation import (  # noqa: E402
    compare_generation,
    format_comparison,
    settings_from_args,
)

from uedsteer.controller.cli.arguments import number  # noqa: E402
from uedsteer.sim_devices.crystals.dataset import (  # noqa: E402
    CrystalDataset,
    load_crystal_dataset,
)
from uedsteer.sim_devices.crystals.settings import (  # noqa: E402
    CrystalDatasetSpec,
)
from uedsteer.sim_devices.crystals.store import write_crystal_dataset  # noqa: E402
from uedsteer.surrogates.crystal.bragg_lists import jitter_positions  # noqa: E402
from uedsteer.surrogates.crystal.convention import SimulationConventionWarning  # noqa: E402
from uedsteer.surrogates.crystal.evaluation import evaluate, format_metrics  # noqa: E402
from uedsteer.surrogates.crystal.predictor import CrystalPredictor  # noqa: E402


def _mote2_frames() -> dict[str, np.ndarray]:
    from uedsteer.sim_devices.frames import generate_frames

    two_h, _ = generate_frames("ref_2H", n=12, seed=5, noise_level=(0.0, 0.1))
    one_tp, _ = generate_frames("interpolated", n=12, seed=5, x=1.0, noise_level=(0.0, 0.1))
    return {"2H (ref_2H)": two_h, "1T' (path end, x = 1)": one_tp}


def measured_positions(
    predictor: CrystalPredictor, data: CrystalDataset, levels: list[float], seed: int
) -> list[str]:
    """The headline figures again with every spot moved by a measurement's error.

    Simulated lists are exact; a measured spot's centroid is off by some thousandths of 1/Å
    (the 4D-STEM sample's default: 0.004). Each level is a Gaussian rms per coordinate.
    """
    lines = ["spot positions with a measurement's error (Gaussian rms per coordinate):"]
    for rms in levels:
        moved = dataclasses.replace(data, bragg=jitter_positions(data.bragg, rms, seed))
        with warnings.catch_warnings():  # moved on purpose: a few spots now lie past k_max
            warnings.simplefilter("ignore", SimulationConventionWarning)
            feats, valid = predictor.features(moved.bragg)
        m = evaluate(predictor, moved, feats, valid, seed=seed)
        cubic = m["per_system"].get("cubic", {})
        lines.append(
            f"  rms {rms:g} 1/Å: crystal system {m['system_accuracy_single']:.3f} single, "
            f"{m['system_accuracy_aggregate']:.3f} {m['aggregate_patterns']}-pattern; cubic "
            f"space group {cubic.get('space_group_aggregate_given_system', float('nan')):.3f}"
            " aggregate"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=9001, help="data seed of the fresh crystals")
    parser.add_argument("--materials", type=int, default=240)
    parser.add_argument(
        "--model",
        default=None,
        help="model folder (default: the user's model when there is one, else the shipped one)",
    )
    parser.add_argument(
        "--ued-model",
        default=None,
        help="model trained on the UED window (--q-range 0.16 1.3) for the MoTe2 frames; "
        "default: <data dir>/crystal_ued when it exists, else --model",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--position-errors",
        nargs="*",
        type=number(0),
        default=[0.001, 0.002, 0.004],
        metavar="RMS",
        help="also score the fresh lists with spot positions moved by these Gaussian errors "
        "(rms per coordinate, 1/Å, >= 0; none: skip)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="change a CrystalGenSettings field of the fresh set (default: the model's first "
        "store's settings), e.g. 'sources={\"prototype\":1.0}' for real structure types",
    )
    parser.add_argument(
        "--generation-materials",
        type=int,
        default=6,
        help="materials of the generation-speed comparison (previous vs current; 0: skip)",
    )
    args = parser.parse_args()

    settings_from_args(parser, {}, args.set)  # a bad --set stops here, before the model loads
    predictor = CrystalPredictor.load(args.model)
    from uedsteer.surrogates.crystal.persistence import model_source

    print(f"model: {model_source(args.model)}")
    spec_used = predictor.metadata_.get("metrics", {}).get("data_spec", {})
    settings = settings_from_args(parser, spec_used.get("settings", {}), args.set)
    if args.generation_materials and settings.method == "dynamical":
        speed = compare_generation(args.seed, args.generation_materials, settings)
        print(format_comparison(speed))
    tmp = tempfile.mkdtemp(prefix="uedsteer-crystal-")
    try:
        t0 = time.perf_counter()
        spec = CrystalDatasetSpec(n_materials=args.materials, seed=args.seed, settings=settings)
        write_crystal_dataset(f"{tmp}/test", spec, n_workers=args.workers, progress=False)
        t_gen = time.perf_counter() - t0
        data = load_crystal_dataset(f"{tmp}/test")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(data)
    print(
        f"fresh test set: seed {args.seed}, {args.materials} materials, {n} dynamical patterns "
        f"({settings.method}, {settings.thickness_nm} nm, {settings.voltage_kv} kV), "
        f"simulated in {t_gen:.0f} s ({n / t_gen:.1f} patterns/s on {args.workers} workers)"
    )
    t0 = time.perf_counter()
    feats, valid = predictor.features(data.bragg)  # as the model was trained (crop, orient)
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    predictor.predict(features=feats[valid])
    t_pred = time.perf_counter() - t0
    print(
        f"featurization ({predictor.feature_set}): {n / t_feat:,.0f} patterns/s   "
        "prediction (hierarchy): "
        f"{valid.sum() / t_pred:,.0f} patterns/s"
    )
    metrics = evaluate(predictor, data, feats, valid, seed=args.seed)
    print(format_metrics(metrics))
    if args.position_errors:
        print("\n".join(measured_positions(predictor, data, args.position_errors, args.seed)))

    from uedsteer.surrogates.crystal.peaks import frame_to_bragg
    from uedsteer.surrogates.crystal.persistence import data_dir

    ued_path = args.ued_model or data_dir() / "crystal_ued"
    ued = CrystalPredictor.load(ued_path) if Path(ued_path).exists() else predictor
    print(f"MoTe2 UED frames (peak finder -> model with q window {ued.q_range}):")
    for label, frames in _mote2_frames().items():
        pred = ued.predict(frame_to_bragg(frames))
        systems, counts = np.unique(pred.crystal_system[pred.valid], return_counts=True)
        print(
            f"  {label} ({len(frames)} frames) read as: "
            + ", ".join(f"{s} {c}" for s, c in zip(systems, counts, strict=True))
            + f"   (mean confidence {np.nanmean(pred.system_confidence):.2f})"
        )


if __name__ == "__main__":
    main()
