"""Logging benchmark: frames through RunEngine + simulated detector + TiledWriter (local catalog).

Three runs of N events with 261 × 261 float32 frames (seed-size 9,180-atom supercell):

1. RunEngine + beamline, no catalog                → simulation + bluesky per frame;
2. the same with TiledWriter into a local catalog  → + logging;
3. RunEngine + a detector replaying ready frames, with TiledWriter → logging alone.

Prints frames/s and the split between simulation and logging. Goal (issue 3): logging adds
≤ 5 ms a frame. Run: ``.venv/bin/python benchmarks/bench_logging.py [--frames 200]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import numpy as np
from bluesky import RunEngine

from uedsteer.plans import acquire_frames, local_catalog, read_frames, subscribe
from uedsteer.sim_devices.beamline import SimulatedBeamline


def timed(RE, plan) -> float:
    t = time.perf_counter()
    RE(plan)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    n = parser.parse_args().frames
    tmp = tempfile.mkdtemp(prefix="uedsteer-bench-log-")
    try:
        client = local_catalog(f"{tmp}/cat")
        bl = SimulatedBeamline(seed=0, n_spots=4)
        RE_plain = RunEngine({})
        RE_plain(acquire_frames(bl, n=3))  # warm-up
        t_sim = timed(RE_plain, acquire_frames(bl, n=n)) / n

        RE_log = RunEngine({})
        subscribe(RE_log, client)
        bl.stage.spot.set(1).wait(1)
        RE_log(acquire_frames(bl, n=3))
        t_full = timed(RE_log, acquire_frames(bl, n=n)) / n
        assert read_frames(client[-1]).shape == (n, 261, 261)

        # logging alone: the detector replays frames that are already computed
        frames = read_frames(client[-1])
        replay = iter(np.concatenate([frames, frames]))
        bl.detector._source = lambda: next(replay)
        t_replay_plain = timed(RE_plain, acquire_frames(bl, n=n // 2)) / (n // 2)
        t_replay_log = timed(RE_log, acquire_frames(bl, n=n // 2)) / (n // 2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"frames per run: {n}, frame 261 x 261 float32, local Tiled catalog (SQLite + zarr)")
    print(
        f"RunEngine + simulated detector           : {t_sim * 1e3:6.1f} ms/frame "
        f"({1 / t_sim:5.1f} frames/s)"
    )
    print(
        f"  + TiledWriter into the local catalog   : {t_full * 1e3:6.1f} ms/frame "
        f"({1 / t_full:5.1f} frames/s)"
    )
    print(f"logging share (difference)               : {(t_full - t_sim) * 1e3:6.1f} ms/frame")
    print(f"replayed frames, RunEngine only          : {t_replay_plain * 1e3:6.1f} ms/frame")
    print(f"replayed frames, RunEngine + TiledWriter : {t_replay_log * 1e3:6.1f} ms/frame")
    print(
        f"logging alone                            : {(t_replay_log - t_replay_plain) * 1e3:6.1f}"
        " ms/frame   (goal <= 5 ms)"
    )


if __name__ == "__main__":
    main()
