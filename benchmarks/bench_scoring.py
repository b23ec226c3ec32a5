"""Scoring benchmark: FrameScorer (CNN + VAE) vs the seed's WideResNet, on this CPU.

Prints the per-frame latency of ``FrameScorer.score`` at batch 1 (median of many frames) and
its throughput at batch 64, and the same for ``SeedWideResNet`` (difference channels at full
261 × 261 resolution + forward pass), with the ratio. Goal (issue 4): ≤ 5 ms a frame at batch 1
for the full scorer, ≥ 20× faster than the seed architecture.
Run: ``.venv/bin/python benchmarks/bench_scoring.py [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from uedsteer.sim_devices.dataset import generate_frames
from uedsteer.sim_devices.physics import difference_channels
from uedsteer.surrogates.cnn import SeedWideResNet
from uedsteer.surrogates.scorer import FrameScorer


def median_ms(fn, items) -> float:
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed-batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = np.concatenate(
        [
            generate_frames(lab, 8, seed=5)[0]
            for lab in ("ref_2H", "vacancy_2H", "phonon_1Tp", "degraded")
        ]
    )
    batch64 = np.concatenate([frames, frames])[:64]
    scorer = FrameScorer.pretrained()
    for f in frames[:5]:
        scorer.score(f)
    lat = median_ms(scorer.score, list(frames) * 3)
    t = time.perf_counter()
    reps = 3
    for _ in range(reps):
        scorer.score(batch64)
    thr = 64 * reps / (time.perf_counter() - t)

    seed_net = SeedWideResNet().eval()
    ref = scorer.reference

    @torch.no_grad()
    def seed_score(batch):
        x = torch.from_numpy(difference_channels(np.atleast_3d(batch).reshape(-1, 261, 261), ref))
        return torch.softmax(seed_net(x), 1)

    seed_score(frames[0])
    seed_lat = median_ms(seed_score, list(frames[:5]))
    nb = args.seed_batch
    t = time.perf_counter()
    seed_score(np.concatenate([batch64] * (nb // 64 + 1))[:nb])
    seed_thr = nb / (time.perf_counter() - t)

    print(f"machine: {os.cpu_count()} cores, torch threads {args.threads}")
    print(f"FrameScorer (UEDNet + VAE + line) batch 1 : {lat:8.2f} ms/frame   (goal <= 5 ms)")
    print(f"FrameScorer batch 64 throughput           : {thr:8.1f} frames/s ({1e3 / thr:.2f} ms)")
    print(f"SeedWideResNet batch 1                    : {seed_lat:8.1f} ms/frame")
    print(f"SeedWideResNet batch {nb} throughput          : {seed_thr:8.2f} frames/s")
    print(f"speed-up at batch 1                       : {seed_lat / lat:8.1f}x   (goal >= 20x)")
    print(f"speed-up at batch 64 (throughput)         : {thr / seed_thr:8.1f}x")


if __name__ == "__main__":
    main()
