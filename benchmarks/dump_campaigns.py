"""Dump every shot of the default campaign on a family of simulated samples, to compare code.

A restructuring must not change what the controller does. This script runs the default
``CampaignConfig()`` on ``ResponseParams.random(seed)`` for each seed (default 100–139), torch
on one thread, and writes one JSON line per shot: sample, shot, spot, status, action, the four
settings and every score, rounded to 12 significant digits. Run it before and after a change
and compare the files (``cmp``); the last line printed is the file's SHA-256.

Run: ``.venv/bin/python benchmarks/dump_campaigns.py --out before.jsonl [--first 100 --n 40]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import warnings

import torch

from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.scorer import FrameScorer


def _number(v):
    if isinstance(v, float):
        return None if math.isnan(v) else float(f"{v:.12g}")
    return v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON-lines file to write")
    parser.add_argument("--first", type=int, default=100, help="first sample seed")
    parser.add_argument("--n", type=int, default=40, help="number of samples")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    scorer = FrameScorer.pretrained()
    digest = hashlib.sha256()
    with open(args.out, "w") as fh:
        for seed in range(args.first, args.first + args.n):
            record = simulate_campaign(
                CampaignConfig(), ResponseParams.random(seed), seed=0, scorer=scorer
            )
            for t in record.trials:
                row = {
                    "sample": seed,
                    "shot": t.index,
                    "spot": t.spot,
                    "status": t.status,
                    "action": t.action,
                    "mode": t.proposal.get("mode", ""),
                    **{k: _number(v) for k, v in t.settings.items()},
                    **{k: _number(v) for k, v in sorted(t.scores.items())},
                }
                line = json.dumps(row, sort_keys=True)
                fh.write(line + "\n")
                digest.update(line.encode())
            print(f"sample {seed}: {len(record)} shots, {record.stop_reason}", flush=True)
    print(f"sha256 {digest.hexdigest()}  {args.out}")


if __name__ == "__main__":
    main()
