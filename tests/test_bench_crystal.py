"""The crystal benchmark's ``--set``: the fresh set's settings changed, bad pairs refused in
one line."""

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
    settings = bench._settings(
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
        bench._settings(argparse.ArgumentParser(prog="bench_crystal.py"), {}, [item])
    assert stop.value.code == 2
    assert said in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_command_line_stops_on_a_bad_pair_without_a_traceback():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--set", "colour=1", "--generation-materials", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("bench_crystal.py: error: argument --set")
