"""Kill-and-resume benchmark: ``kill -9`` a CLI campaign at random shots, resume, check the catalog.

For each kill point: ``uedsteer campaign`` runs on a fresh catalog (wavelength box 600–1000 nm,
so a resume that forgot the configuration would show), is killed with SIGKILL after a random
number of shots, and ``uedsteer campaign --resume UID --budget B`` continues it. The catalog
must then hold every shot exactly once (0 … n−1 over the chain of runs), the resumed run must
carry the recorded configuration, every resumed shot must lie inside the recorded box, and the
pump shutter must be closed at the end. Prints one line per kill point and a summary.

Run: ``.venv/bin/python benchmarks/bench_kill_resume.py [--points 10] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import yaml

from uedsteer.plans.catalog import local_catalog

UEDSTEER = [sys.executable, "-m", "uedsteer.controller.cli"]
CONFIG = {
    "parameters": [
        {
            "name": "fluence",
            "low": 0.2,
            "high": 12,
            "hard_high": 20,
            "max_step": 1.5,
            "safe_start": 0.5,
        },
        {
            "name": "wavelength",
            "low": 600,
            "high": 1000,
            "hard_low": 400,
            "hard_high": 1600,
            "max_step": 150,
            "safe_start": 800,
        },
    ],
    "budget": 12,
    "target": 2.0,
}


def _chain_shots(cat, uid: str) -> tuple[list[int], list[dict]]:
    shots, starts = [], []
    while uid:
        run = cat[uid]
        starts.append(run.metadata["start"])
        try:
            shots = [int(s) for s in np.asarray(run["primary"]["campaign_shot"].read())] + shots
        except KeyError:
            pass
        uid = run.metadata["start"].get("resumed_from")
    return shots, starts[::-1]


def one_point(tmp: str, kill_after: int, budget: int) -> dict:
    cat, out = f"{tmp}/cat", f"{tmp}/out"
    cfg = f"{tmp}/campaign.yaml"
    with open(cfg, "w") as fh:
        yaml.safe_dump(CONFIG, fh)
    proc = subprocess.Popen(
        [*UEDSTEER, "campaign", "--config", cfg, "--sample", "213", "--catalog", cat, "--out", out],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    uid, shots = None, 0
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("run "):
            uid = line.split()[1]
        words = line.split()
        if words and words[0].isdigit() and len(words) > 5:
            shots += 1
            if shots == kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(30)
    t0 = time.perf_counter()
    res = subprocess.run(
        [
            *UEDSTEER,
            "campaign",
            "--resume",
            uid,
            "--budget",
            str(budget),
            "--catalog",
            cat,
            "--out",
            out,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    client = local_catalog(cat)
    newest = client.values().last()
    shots_all, starts = _chain_shots(client, newest.metadata["start"]["uid"])
    recorded = starts[0]["campaign_config"]
    resumed = starts[-1]["campaign_config"]
    wl = np.asarray(newest["primary"]["pump_wavelength"].read()) if len(starts) > 1 else []
    return {
        "kill_after": kill_after,
        "resume_rc": res.returncode,
        "every_shot_once": shots_all == list(range(len(shots_all))),
        "shots": len(shots_all),
        "same_config": resumed["parameters"] == recorded["parameters"],
        "inside_box": bool(np.all((np.asarray(wl) >= 600) & (np.asarray(wl) <= 1000))),
        # the plan closes the shutter before it closes the run: a stop document with
        # exit_status "success" is written only after that
        "shutter_closed": (newest.metadata.get("stop") or {}).get("exit_status") == "success",
        "resume_s": seconds,
        "error": res.stderr.strip().splitlines()[-1] if res.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.points):
        kill_after = int(rng.integers(1, 8))
        tmp = tempfile.mkdtemp(prefix="uedsteer-kill-")
        try:
            row = one_point(tmp, kill_after, budget=kill_after + 3)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append(row)
        print(
            f"point {i + 1:2d}: killed after shot {kill_after}; resume exit {row['resume_rc']}; "
            f"{row['shots']} shots, every shot once {row['every_shot_once']}, same config "
            f"{row['same_config']}, inside the box {row['inside_box']}, closed cleanly "
            f"{row['shutter_closed']}; resume took {row['resume_s']:.0f} s {row['error']}",
            flush=True,
        )
    good = sum(
        r["every_shot_once"] and r["same_config"] and r["inside_box"] and r["resume_rc"] == 0
        for r in rows
    )
    print(f"kill points {len(rows)}: {good} resumed with every shot once and the same config")


if __name__ == "__main__":
    main()
