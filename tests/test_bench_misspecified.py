"""The misspecification benchmark's own arithmetic and options: the Wilson interval, the
``--set`` overrides, ``--scale``, ``--oversample`` and ``--scorer`` reaching the campaigns, and
``--jobs`` running the same campaigns as one process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_misspecified.py"
WEIGHTS = ROOT / "surrogates" / "weights"


@pytest.fixture(scope="module")
def bench():
    from conftest import load_benchmark

    return load_benchmark("bench_misspecified")


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


def test_scale_moves_one_property_of_the_wide_samples_only(bench):
    assert bench.parse_scales(["expansion_per_k=0.25", "heating_k_per_mj=2"]) == {
        "expansion_per_k": 0.25,
        "heating_k_per_mj": 2.0,
    }
    wide, scaled = bench.draw("wide", 1003), bench.draw("wide", 1003, {"expansion_per_k": 0.25})
    assert scaled.expansion_per_k == pytest.approx(0.25 * wide.expansion_per_k)
    rest = {k: v for k, v in scaled.model_dump().items() if k != "expansion_per_k"}
    assert rest == {k: v for k, v in wide.model_dump().items() if k != "expansion_per_k"}
    assert bench.draw("family", 203, {"expansion_per_k": 0.0}) == bench.draw("family", 203)


@pytest.mark.parametrize(
    ("parser", "item", "message"),
    [
        ("parse_sets", "heating_margin=2", "heating_margin=2: Input should be less than or equal"),
        ("parse_sets", "bogus=1", "bogus=1: Extra inputs are not permitted"),
        ("parse_sets", "heating_margin", "give FIELD=VALUE"),
        ("parse_scales", "bogus=1", "--scale 'bogus=1': give FIELD=FACTOR"),
        ("parse_scales", "expansion_per_k=-1", "give a finite factor >= 0"),
        ("parse_scales", "damage_threshold=0", "--scale damage_threshold: Input should be greater"),
    ],
)
def test_bad_options_are_one_line_errors(bench, parser, item, message):
    with pytest.raises(SystemExit, match=message):
        getattr(bench, parser)([item])


def test_jobs_run_the_same_campaigns_as_one_process(tmp_path):
    def run(jobs):
        out = tmp_path / f"jobs{jobs}.jsonl"
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--samples", "1", "--families", "wide", "--jobs",
             str(jobs), "--set", "budget=8", "--controller-seeds", "0,1", "--out", str(out),
             "--scale", "expansion_per_k=0.5", "--oversample", "3", "--scorer", str(WEIGHTS)],
            check=True, capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        assert "controller seeds 0, 1 (pooled)" in done.stdout
        assert "wide samples scaled: expansion_per_k x 0.5" in done.stdout
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert all(r["host"] and r["config"]["budget"] == 8 for r in rows)
        assert all(r["scale"] == {"expansion_per_k": 0.5} for r in rows)
        assert f"frames: 3 x 3 samples a pixel; scorer {WEIGHTS}" in done.stdout
        assert all(r["oversample"] == 3 and r["scorer"] == str(WEIGHTS) for r in rows)
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


def test_runs_with_and_without_check_frames_are_summarized_apart(bench, capsys):
    """A file holding both modes (older records say it as ``mode``) prints one table a mode,
    never one figure pooled over two controllers."""

    def rec(seed, success, checks):
        first = 5 if success else None
        return dict(family="family", seed=seed, success=success, damage=0, shots=5, stop="") | {
            "shots_to_success": first,
            **checks,
        }

    records = [rec(200, True, {"check_frames": True}), rec(201, True, {"mode": "check_frames"})]
    records += [rec(200, False, {"check_frames": False}), rec(201, False, {"mode": "default"})]
    bench.summarize(records, 40)
    out = capsys.readouterr().out
    assert out.count("budget 40 shots") == 2
    blocks = out.split("budget 40 shots")[1:]
    assert "check_frames=False" in blocks[0] and "0.0%" in blocks[0].splitlines()[2]
    assert "check_frames=True" in blocks[1] and "100.0%" in blocks[1].splitlines()[2]
