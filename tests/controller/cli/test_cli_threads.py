"""The ``uedsteer`` commands run within the process's thread budget (issue 34): checked in real
processes, by the limits the libraries report there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from uedsteer.plans.catalog import local_catalog
from uedsteer.surrogates.threads import ENVIRONMENT_VARIABLES

UEDSTEER = [sys.executable, "-m", "uedsteer.controller.cli"]


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment without the thread variables (this test process may have set them by
    applying a budget itself), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    return {**env, **extra}


def uedsteer(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*UEDSTEER, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def test_a_cli_campaign_computes_within_its_budget(tmp_path):
    """``threads: 3`` in the configuration and ``OMP_NUM_THREADS=2``: 3 cores for the workers,
    2 threads an operation, in the thread that ran the plan, as its start document records
    them."""
    cfg = tmp_path / "campaign.yaml"
    cfg.write_text("threads: 3\nbudget: 1\n")
    cat, out = tmp_path / "cat", tmp_path / "out"
    args = ["campaign", "--config", str(cfg), "--catalog", str(cat), "--out", str(out)]
    res = uedsteer(args, clean_environment(OMP_NUM_THREADS="2"), tmp_path)
    assert res.returncode == 0, res.stderr
    assert "threads: 3 cores (configuration); 2 per operation (OMP_NUM_THREADS)" in res.stdout
    recorded = local_catalog(cat).values().last().metadata["start"]["threads"]
    assert recorded["cores"] == 3 and recorded["scorer_workers"] == 2
    limits = recorded["limits"]
    assert limits["torch_intra_op"] == 2
    assert limits["threadpools"] and {n for *_, n in limits["threadpools"]} == {2}
    assert limits["dask_num_workers"] == 3


def test_a_bad_thread_variable_is_refused_before_the_catalog_is_made(tmp_path):
    env = clean_environment(OMP_NUM_THREADS="lots")
    res = uedsteer(["campaign", "--catalog", str(tmp_path / "cat")], env, tmp_path)
    assert res.returncode == 2
    assert "OMP_NUM_THREADS='lots' is not a positive integer" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cat").exists()


def test_the_ipython_session_runs_within_the_budget(tmp_path):
    """The session applies the budget from the environment before anything computes."""
    code = (
        "import json; from uedsteer.surrogates.threads import applied_thread_budget, "
        "current_limits; print('LIMITS', json.dumps([applied_thread_budget().intra_op_source, "
        "current_limits()]))"
    )
    args = ["ipython", "--catalog", str(tmp_path / "cat"), "--", "--simple-prompt", "-c", code]
    res = uedsteer(args, clean_environment(OPENBLAS_NUM_THREADS="2"), tmp_path)
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("LIMITS "))
    source, limits = json.loads(line.removeprefix("LIMITS "))
    assert source == "OPENBLAS_NUM_THREADS"
    assert limits["torch_intra_op"] == 2
    assert {n for *_, n in limits["threadpools"]} == {2}
