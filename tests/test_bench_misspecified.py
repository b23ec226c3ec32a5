"""The misspecification benchmark's own arithmetic and options: the Wilson interval, the
``--set`` overrides, and ``--jobs`` running the same campaigns as one process."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_misspecified.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bench_misspecified", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_wilson_interval(bench):
    lo, hi = bench.wilson(48, 60)
    assert lo == pytest.approx(0.6822, abs=1e-4) and hi == pytest.approx(0.8817, abs=1e-4)
    lo, hi = bench.wilson(60, 60)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.940, abs=1e-3)
    assert bench.rate(48, 60) == "80.0% (68%-88%)"


def test_set_overrides_are_checked_against_the_configuration(bench):
    assert bench.parse_sets(["heating_margin=0.9", "check_frames=true"]) == {
        "heating_margin": 0.9,
        "check_frames": True,
    }
    with pytest.raises(SystemExit, match="heating_margin=2: Input should be less than or equal"):
        bench.parse_sets(["heating_margin=2"])
    with pytest.raises(SystemExit, match="bogus=1: Extra inputs are not permitted"):
        bench.parse_sets(["bogus=1"])
    with pytest.raises(SystemExit, match="give FIELD=VALUE"):
        bench.parse_sets(["heating_margin"])


def test_jobs_run_the_same_campaigns_as_one_process(tmp_path):
    def run(jobs):
        out = tmp_path / f"jobs{jobs}.jsonl"
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--samples", "1", "--families", "wide", "--jobs",
             str(jobs), "--set", "budget=8", "--controller-seeds", "0,1", "--out", str(out)],
            check=True, capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        assert "controller seeds 0, 1 (pooled)" in done.stdout
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert all(r["host"] and r["config"]["budget"] == 8 for r in rows)
        assert {r["config"].get("seed", 0) for r in rows} == {0, 1}
        return {
            (r["seed"], r["config"].get("seed", 0)): (
                r["success"],
                r["damage"],
                r["shots"],
                r["stop"],
            )
            for r in rows
        }

    one, two = run(1), run(2)
    assert set(one) == {(1000, 0), (1000, 1)} and one == two
