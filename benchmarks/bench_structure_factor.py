"""Structure-factor backend benchmark: NUFFT vs direct sum, and complete frames per second.

Prints, on a seed-size supercell (51 × 30 orthorhombic cells = 9,180 atoms, thermal
displacements of 0.1 Å):

* wall time of ``method="direct"`` (chunked numpy, one run) and ``method="nufft"``
  (median of 20), their ratio, and the max and L2 relative errors of the NUFFT intensity;
* complete frames per second (random structure of every label + intensity + detector):
  one process, and the Dask generator with a LocalCluster of 2 worker processes writing a
  zarr store, as ``uedsteer generate`` runs it.

Goals (issue 2): ratio ≥ 500× at relative error ≤ 1e-5; ≥ 50 complete frames/s on 2 cores.
Run: ``.venv/bin/python benchmarks/bench_structure_factor.py [--frames 720]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from uedsteer.sim_devices.frame_store import DatasetSpec, write_dataset
from uedsteer.sim_devices.frames import LABELS, generate_frames
from uedsteer.sim_devices.materials import get_material
from uedsteer.sim_devices.physics import (
    ReciprocalGrid,
    add_thermal_displacements,
    kinematic_intensity,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=720, help="frames for the Dask run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    grid = ReciprocalGrid()
    atoms = add_thermal_displacements(
        get_material("MoTe2").supercell("2H", (51, 30)), 0.1, np.random.default_rng(0)
    )
    print(f"machine: {os.cpu_count()} cores; structure: {len(atoms)} atoms; grid {grid.n}²")

    kinematic_intensity(atoms, grid)  # warm-up (plans, form-factor cache)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        fast = kinematic_intensity(atoms, grid, method="nufft")
        times.append(time.perf_counter() - t)
    t_fast = float(np.median(times))
    t = time.perf_counter()
    ref = kinematic_intensity(atoms, grid, method="direct")
    t_direct = time.perf_counter() - t
    max_rel = float(np.abs(fast - ref).max() / ref.max())
    l2_rel = float(np.linalg.norm(fast - ref) / np.linalg.norm(ref))
    print(f"direct sum      : {t_direct * 1e3:9.1f} ms")
    print(f"nufft (median)  : {t_fast * 1e3:9.2f} ms")
    print(f"speed ratio     : {t_direct / t_fast:9.0f}x   (goal >= 500x)")
    print(f"max rel. error  : {max_rel:9.2e}   (max|dI| / max I; goal <= 1e-5)")
    print(f"L2 rel. error   : {l2_rel:9.2e}")

    n_single = 9 * 10
    generate_frames("ref_2H", 2, seed=0)
    t = time.perf_counter()
    for label in LABELS:
        generate_frames(label, n_single // len(LABELS), seed=1)
    rate_single = n_single / (time.perf_counter() - t)
    print(f"frames/s, 1 process            : {rate_single:6.1f}")

    per_label = max(1, args.frames // len(LABELS))
    tmp = tempfile.mkdtemp(prefix="uedsteer-bench-")
    try:
        spec = DatasetSpec(n_per_label=per_label, seed=2, chunk=40)
        t = time.perf_counter()
        write_dataset(f"{tmp}/bench.zarr", spec, n_workers=args.workers, progress=False)
        wall = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = per_label * len(LABELS)
    print(
        f"frames/s, Dask {args.workers} workers + zarr: {n / wall:6.1f}   "
        f"({n} frames in {wall:.1f} s incl. cluster start-up; goal >= 50)"
    )


if __name__ == "__main__":
    main()
