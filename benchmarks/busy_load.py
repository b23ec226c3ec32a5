"""What the latency benchmarks share: ``--load N`` busy-loop processes, and ``--no-budget``.

A beamline computer is never idle, so ``bench_campaign.py --latency-only`` and
``bench_scoring.py`` time each figure both idle and while N processes
(``python -c "while True: pass"``, started here and ended by PID) keep cores busy, in
alternating rounds: this host's speed drifts over minutes (a shared virtual machine), and a
drift should not land on one column only. Other processes on the machine add to the load: the
load average before the run is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def add_load_arguments(parser: argparse.ArgumentParser, load: int = 2) -> None:
    """``--load N``, ``--rounds`` and ``--no-budget``, the same in both benchmarks."""
    parser.add_argument(
        "--load",
        type=int,
        default=load,
        metavar="N",
        help=f"busy-loop processes for the 'loaded' column (default {load}; 0: idle only)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating idle/loaded rounds (median of them)"
    )
    parser.add_argument(
        "--no-budget",
        action="store_true",
        help="do not apply the thread budget: the libraries' own defaults (one thread per "
        "core in torch, BLAS and OpenMP), as before the budget existed",
    )


def apply_budget(no_budget: bool) -> str:
    """Apply the thread budget as the campaign's entry points do (unless ``no_budget``) and
    say in one line what the process runs with."""
    if no_budget:
        import torch

        return (
            f"no thread budget: the libraries' defaults (torch {torch.get_num_threads()} "
            "threads per operation)"
        )
    from uedsteer.surrogates.threads import apply_thread_budget

    return apply_thread_budget().describe()


def machine_line() -> str:
    """Cores and the load average before the run (other work on the machine adds load)."""
    from uedsteer.surrogates.threads import affinity_cores

    return (
        f"machine: {os.cpu_count()} cores, this process may use {affinity_cores()}; load "
        f"average (1 min) before the run {os.getloadavg()[0]:.2f}"
    )


SETTLE_SECONDS = 1.0
"""Wait after starting the busy processes (to reach the run queue) and after ending them: as
long as the window over which the thread budget reads the other processes' load
(``LOAD_WINDOW_SECONDS``), so that neither column is timed with the other's threads."""


@contextmanager
def busy_processes(n: int) -> Iterator[list[int]]:
    """``n`` busy-loop Python processes for the duration of the block, ended by PID."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            procs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(SETTLE_SECONDS)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if procs:
            time.sleep(SETTLE_SECONDS)
