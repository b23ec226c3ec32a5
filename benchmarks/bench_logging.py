"""Logging benchmark: what durable logging costs a 261 × 261 frame, embedded and served.

A detector replays ready-made frames (so the figures are logging alone, not simulation), and a
RunEngine acquires N of them:

1. no catalog                                           → bluesky's own cost per frame;
2. ``subscribe`` into an embedded catalog folder        → + the journal, on the plan's path;
3. ``subscribe`` into a ``tiled serve`` process          → the same against a real server;
4. for comparison, TiledWriter with ``batch_size=1`` called by the RunEngine itself (the way
   to survive ``kill -9`` before the journal).

For 2 and 3 it prints the plan-side overhead per frame (what holds up the beamline: goal
≤ 5 ms) and the delivery time per frame (how long until the catalog has every frame, from the
background thread). Run: ``.venv/bin/python benchmarks/bench_logging.py [--frames 100]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
from bluesky import RunEngine

from uedsteer.plans import acquire_frames, read_frames, subscribe
from uedsteer.plans.catalog import local_catalog, open_catalog
from uedsteer.plans.tiled_server import TiledServer
from uedsteer.sim_devices.beamline import SimulatedBeamline

GOAL_MS = 5.0


def _beamline(frames: np.ndarray) -> SimulatedBeamline:
    bl = SimulatedBeamline(seed=0, n_spots=4)
    cycle = iter(np.concatenate([frames] * 1000))
    bl.detector._source = lambda: next(cycle)
    return bl


def _per_frame(RE: RunEngine, bl, n: int) -> tuple[float, str]:
    t = time.perf_counter()
    (uid,) = RE(acquire_frames(bl, n=n))
    return (time.perf_counter() - t) / n, uid


def _durable(client, bl, n: int, plain: float) -> tuple[float, float]:
    """(plan-side overhead, delivery time) per frame, in seconds."""
    RE = RunEngine({})
    subscribe(RE, client)
    delivery = RE.uedsteer_delivery[0]
    delivery.wait = lambda uid: True  # measure the plan alone; delivery is timed below
    _per_frame(RE, bl, 3)
    delivery.flush(120)
    t0 = time.perf_counter()
    per, uid = _per_frame(RE, bl, n)
    delivery.flush(600)
    total = time.perf_counter() - t0
    assert read_frames(client[uid]).shape[0] == n, "every frame is in the catalog"
    return per - plain, total / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    n = parser.parse_args().frames
    tmp = tempfile.mkdtemp(prefix="uedsteer-bench-log-")
    os.environ["UEDSTEER_JOURNAL"] = f"{tmp}/journal"
    rng = np.random.default_rng(0)
    frames = rng.gamma(2.0, 50.0, size=(8, 261, 261)).astype(np.float32)
    try:
        bl = _beamline(frames)
        RE = RunEngine({})
        _per_frame(RE, bl, 3)
        plain, _ = _per_frame(RE, bl, n)

        embedded = _durable(local_catalog(f"{tmp}/cat"), bl, n, plain)
        with TiledServer(f"{tmp}/served") as server:
            served = _durable(open_catalog(server.url, api_key=server.api_key), bl, n, plain)

        from bluesky_tiled_plugins import TiledWriter

        RE_sync = RunEngine({})
        RE_sync.subscribe(TiledWriter(local_catalog(f"{tmp}/sync"), batch_size=1, max_array_size=0))
        _per_frame(RE_sync, bl, 3)
        sync, _ = _per_frame(RE_sync, bl, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"{n} frames a run, 261 x 261 float32, replayed (logging alone); 2 cores")
    print(f"RunEngine, no catalog                          : {plain * 1e3:7.2f} ms/frame")
    rows = [("embedded catalog folder", embedded), ("tiled serve on 127.0.0.1", served)]
    for name, (overhead, delivered) in rows:
        print(
            f"durable, {name:24s}: plan-side {overhead * 1e3:6.2f} ms/frame "
            f"(goal <= {GOAL_MS:.0f}: {'met' if overhead * 1e3 <= GOAL_MS else 'NOT met'}); "
            f"in the catalog after {delivered * 1e3:6.1f} ms/frame"
        )
    print(
        f"TiledWriter batch_size=1 on the plan's path    : {(sync - plain) * 1e3:7.2f} ms/frame "
        "(for comparison)"
    )


if __name__ == "__main__":
    main()
