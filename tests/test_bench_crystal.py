"""The crystal benchmarks' ``--set``: the fresh set's settings changed, bad pairs refused in
one line (``bench_crystal.py`` and ``bench_crystal_generation.py``)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_crystal.py"


@pytest.fixture(scope="module")
def bench():
    from conftest import load_benchmark

    return load_benchmark("bench_crystal")


def test_set_changes_the_fresh_sets_settings(bench):
    import argparse

    stored = {"zone_axes": 20, "thickness_nm": 20.0}
    settings = bench.settings_from_args(
        argparse.ArgumentParser(), stored, ['sources={"prototype":1.0}', "zone_axes=4"]
    )
    assert settings.sources == {"prototype": 1.0}
    assert settings.zone_axes == 4 and settings.thickness_nm == 20.0


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("nope", "argument --set: 'nope' is not allowed: use KEY=JSON"),
        ("zone_axes=x", "argument --set: 'zone_axes=x' is not allowed: use KEY=JSON"),
        ("colour=1", "argument --set: colour=1 is not allowed"),
        ("zone_axes=0", "argument --set: zone_axes=0 is not allowed"),
    ],
)
def test_bad_set_pairs_are_one_line_errors(bench, capsys, item, said):
    import argparse

    with pytest.raises(SystemExit) as stop:
        bench.settings_from_args(argparse.ArgumentParser(prog="bench_crystal.py"), {}, [item])
    assert stop.value.code == 2
    assert said in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("script", "extra"),
    [("bench_crystal.py", ["--generation-materials", "0"]), ("bench_crystal_generation.py", [])],
)
def test_the_command_line_stops_on_a_bad_pair_without_a_traceback(script, extra):
    out = subprocess.run(
        [sys.executable, str(SCRIPT.parent / script), "--set", "colour=1", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"{script}: error: argument --set")
