"""Ordinary mistakes on the command line end in one line that names the argument, the value
and what is allowed (or the fix), with a non-zero status and no traceback, before any heavy
work; and a frame store grows when asked for more frames per label (issue 29)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_main


def uedsteer(*args: str, data_dir: Path | None = None, timeout: float = 120, real=False):
    """Run the ``uedsteer`` command's ``main`` (``real``: the installed command in a
    subprocess); ``data_dir`` becomes ``$UEDSTEER_DATA``.

    In-process runs keep the suite fast; an exception escaping ``main`` (what a user would see
    as a traceback) fails the test just the same.
    """
    env = dict(os.environ)
    if data_dir is not None:
        env["UEDSTEER_DATA"] = str(data_dir)
    if real:
        return subprocess.run(
            [sys.executable, "-m", "uedsteer.controller.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    return run_main(args, env)


def error_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The one error line of a failed command, after checking it holds every part."""
    assert proc.returncode not in (0, None), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    assert line.startswith("uedsteer "), line
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"
    return line


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["generate", "--workers", "0"], ["argument --workers", "'0'", ">= 1"]),
        (["generate", "--workers", "-2"], ["argument --workers", "'-2'", ">= 1"]),
        (["generate", "--chunk", "0"], ["argument --chunk", "'0'", ">= 1"]),
        (["generate", "--n-per-label", "0"], ["argument --n-per-label", "'0'", ">= 1"]),
        (["generate", "--n-per-label", "-1"], ["argument --n-per-label", "'-1'", ">= 1"]),
        (["generate", "crystals", "--n-materials", "0"], ["argument --n-materials", ">= 1"]),
        (["generate", "--seed", "-1"], ["argument --seed", "'-1'", ">= 0"]),
        (["generate", "--set", "noise_level"], ["argument --set", "'noise_level'", "KEY=VALUE"]),
        (["generate", "--chunk", "5000"], ["argument --chunk", "5000", "4096"]),
        (["generate", "--labels", "molten_2H"], ["argument --labels", "'molten_2H'", "ref_2H"]),
        (
            ["generate", "--set", "noise_level=[0,3]"],
            ["argument --set", "noise_level=(0.0, 3.0)", "<= 1.0"],
        ),
        (
            ["generate", "crystals", "--set", "foo=1"],
            ["argument --set", "'foo'", "is not a setting", "zone_axes"],
        ),
        (["train", "cnn", "--threads", "0"], ["argument --threads", "'0'", ">= 1"]),
        (["train", "cnn", "--epochs", "0"], ["argument --epochs", "'0'", ">= 1"]),
        (["train", "cnn", "--lr", "0"], ["argument --lr", "'0'", "> 0"]),
        (["train", "cnn", "--target", "1.5"], ["argument --target", "'1.5'", "<= 1"]),
        (["train", "vae", "--beta", "nan"], ["argument --beta", "'nan'", ">= 0"]),
        (["train", "mixed", "--mixed-frames", "1"], ["argument --mixed-frames", "'1'", ">= 2"]),
        (
            ["train", "crystal", "--max-features", "7"],
            ["argument --max-features", "'7'", "'sqrt'", "(0, 1]"],
        ),
        (["train", "crystal", "--system-trees", "0"], ["argument --system-trees", ">= 1"]),
        (["train", "crystal", "--q-range", "1", "0.5"], ["argument --q-range", "1 0.5", "QMIN"]),
        (
            ["train", "crystal", "--position-jitter", "-0.001"],
            ["argument --position-jitter", "'-0.001'", ">= 0"],
        ),
        (["phonons", "--supercell", "6", "0", "1"], ["argument --supercell", "'0'", ">= 1"]),
        (["ioc", "--prefix", "U D:"], ["argument --prefix", "'U D:'", "letters, digits"]),
        (["facility", "up", "--ca-port", "70000"], ["argument --ca-port", "'70000'", "1 to 65535"]),
        (["facility", "up", "--sample", "-1"], ["argument --sample", "'-1'", ">= 0"]),
    ],
)
def test_bad_values_name_the_option_and_what_is_allowed(tmp_path, args, parts):
    if args[0] == "generate":
        args = [*args, "--out", str(tmp_path / "store")]
    error_line(uedsteer(*args, data_dir=tmp_path, timeout=60), *parts)
    assert not (tmp_path / "store").exists(), "nothing is written"


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--out", "{file}"],
        ["generate", "crystals", "--out", "{file}"],
        ["train", "cnn", "--out", "{file}"],
        ["train", "crystal", "--out", "{file}"],
        ["train", "crystal", "--report", "{file}"],
        ["report", "models", "--out", "{file}"],
        ["stem", "--out", "{file}"],
        ["stem", "--out", "{file}/maps"],
    ],
)
def test_out_naming_an_existing_file_is_refused(tmp_path, args):
    file = tmp_path / "taken.txt"
    file.write_text("keep me")
    args = [a.format(file=file) for a in args]
    option = "--report" if "--report" in args else "--out"
    error_line(uedsteer(*args, data_dir=tmp_path), f"argument {option}", str(file), "folder")
    assert file.read_text() == "keep me"


def test_phonons_out_naming_a_folder_is_refused(tmp_path):
    error_line(uedsteer("phonons", "--out", str(tmp_path)), "argument --out", str(tmp_path))


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (
            ["train", "crystal", "--data", "{tmp}/nonexist"],
            ["argument --data", "nonexist does not exist", "uedsteer generate crystals --out"],
        ),
        (
            ["train", "cnn", "--data", "{tmp}/nonexist"],
            ["argument --data", "nonexist", "has no train.zarr", "uedsteer generate --out"],
        ),
        (
            ["train", "vae", "--data", "{tmp}/nonexist"],
            ["argument --data", "nonexist", "has no train.zarr", "uedsteer generate --out"],
        ),
        (
            ["report", "models", "--data", "{tmp}/nonexist"],
            ["argument --data", "nonexist", "has no test.zarr", "uedsteer generate --out"],
        ),
        (
            ["train", "finetune", "--base", "{tmp}/nobase"],
            ["argument --base", "nobase", "no cnn_syn.pt", "uedsteer train cnn --out"],
        ),
    ],
)
def test_missing_inputs_say_how_to_make_them(tmp_path, args, parts):
    args = [a.format(tmp=tmp_path) for a in args]
    error_line(uedsteer(*args, data_dir=tmp_path), *parts)


def test_training_writes_to_a_user_folder_by_default(tmp_path, monkeypatch):
    """Not into the package's shipped weights: those change only when --out names them."""
    from uedsteer.surrogates.train_models import default_weights_dir, package_weights_dir

    monkeypatch.setenv("UEDSTEER_DATA", str(tmp_path))
    assert default_weights_dir() == tmp_path / "scorer"
    assert default_weights_dir() != package_weights_dir()
    user = tmp_path / "scorer"
    line = error_line(uedsteer("train", "finetune", data_dir=tmp_path), "argument --out")
    assert f"{str(user)!r} holds no cnn_syn.pt" in line and f"train cnn --out {user}" in line
    line = error_line(uedsteer("train", "mixed", data_dir=tmp_path), "argument --out")
    assert "no cnn_exp.pt" in line and f"uedsteer train finetune --out {user}" in line
    assert not user.exists()
    help_text = uedsteer("train", "--help").stdout
    assert "FrameScorer.load(DIR)" in help_text and "~/.local/share/uedsteer/scorer" in help_text


def test_a_missing_crystal_model_says_the_whole_path_in_one_line(tmp_path, monkeypatch):
    """generate → train → use, with times; without a user model the shipped one is used."""
    from uedsteer.surrogates.crystal import persistence
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    model = tmp_path / "mymodel"
    line = error_line(uedsteer("stem", "--model", str(model)), "argument --model", str(model))
    assert "`uedsteer generate crystals --out data/crystals --n-materials 1000` (≈ 5–20 min" in line
    assert f"`uedsteer train crystal --data data/crystals` (≈ 2–10 min; it writes {model}" in line
    assert "`uedsteer stem` use it" in line
    # no user model and no shipped one (a package without its data): the same path, in load()
    monkeypatch.setenv("UEDSTEER_DATA", str(tmp_path))
    monkeypatch.setattr(persistence, "SHIPPED_MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError) as err:
        CrystalPredictor.load()
    text = str(err.value)
    assert "\n" not in text and f"no trained crystal model in {tmp_path / 'crystal'}" in text
    assert "the package holds no shipped model" in text and "(≈ 2–10 min" in text
    # training without a store: the same path, naming the store
    line = error_line(
        uedsteer("train", "crystal", "--data", str(tmp_path / "none"), data_dir=tmp_path),
        "argument --data",
        "uedsteer generate crystals --out",
    )
    assert "(≈ 5–20 min" in line and "run this command again (≈ 2–10 min)" in line
    assert "without one they use the model shipped with uedsteer" in line


def test_crystal_store_with_other_settings_names_each_difference(tmp_path):
    """Refused before any work, with the stored and asked values and the way out."""
    from uedsteer.sim_devices.crystals.settings import CrystalDatasetSpec

    store = tmp_path / "crystals"
    (store / "chunks").mkdir(parents=True)
    spec = CrystalDatasetSpec(n_materials=30, seed=2, chunk=12)
    config = json.loads(spec.model_dump_json())
    from uedsteer.sim_devices.crystals.store import FORMAT_VERSION

    meta = {"uedsteer_crystals": FORMAT_VERSION, "config": config}
    (store / "spec.json").write_text(json.dumps(meta))
    args = ["generate", "crystals", "--out", str(store), "--n-materials", "40", "--seed", "2"]
    line = error_line(uedsteer(*args, "--set", "zone_axes=4"), f"out={store}")
    assert "n_materials 30 (asked: 40)" in line and "settings.zone_axes 20 (asked: 4)" in line
    assert "--n-materials 30 --set zone_axes=20" in line, "the stored settings, to resume"
    assert "new --out" in line and "--data A,B" in line, "more materials: a second store"
    assert not list((store / "chunks").iterdir())


SMALL = ["--labels", "degraded,ref_2H", "--chunk", "2", "--workers", "1"]
SMALL += ["--set", "base_size=[6,4]", "--seed", "3"]


def test_frame_store_grows_and_keeps_its_frames_bit_for_bit(tmp_path):
    """A larger --n-per-label extends a store (README); any other change is refused with the
    settings that differ. The last chunk was short (3 frames, chunk 2): its stored frame stays,
    only the new rows are generated."""
    import zarr

    from uedsteer.sim_devices.frame_store import load_dataset
    from uedsteer.sim_devices.frames import generate_frames

    store = tmp_path / "train.zarr"
    proc = uedsteer("generate", "--out", str(store), "--n-per-label", "3", *SMALL, real=True)
    assert proc.returncode == 0, proc.stderr
    before, _ = load_dataset(store)
    stored = {
        label: zarr.open_group(str(store), mode="r")[label]["frames"][:]
        for label in ("degraded", "ref_2H")
    }

    line = error_line(
        uedsteer("generate", "--out", str(store), "--n-per-label", "2", *SMALL),
        f"out={store}",
        "n_per_label 3 (asked: 2)",
        "never shrinks",
        "--n-per-label 3 or more",
    )
    args = ["generate", "--out", str(store), "--n-per-label", "5", *SMALL[:-2], "--seed", "4"]
    line = error_line(uedsteer(*args, "--set", "noise_level=[0,0.2]"), f"out={store}")
    assert "seed 3 (asked: 4)" in line
    assert "settings.noise_level [0.0, 0.5] (asked: [0.0, 0.2])" in line
    assert "--seed 3 --set noise_level=[0.0,0.5]" in line and "new out" in line
    assert "n_per_label" not in line, "a larger n_per_label is not a difference that blocks"

    proc = uedsteer("generate", "--out", str(store), "--n-per-label", "5", *SMALL, real=True)
    assert proc.returncode == 0, proc.stderr
    root = zarr.open_group(str(store), mode="r")
    assert root.attrs["complete"] is True and root.attrs["config"]["n_per_label"] == 5
    for label in ("degraded", "ref_2H"):
        frames = root[label]["frames"][:]
        assert frames.shape[0] == 5
        assert frames[:3].tobytes() == stored[label].tobytes(), "stored frames untouched"
        new, params = generate_frames(label, 2, seed=3, start=3, base_size=(6, 4))
        assert np.array_equal(frames[3:], new), "the frames a 5-frame store holds"
        assert [p["index"] for p in params] == [3, 4]
    after, params = load_dataset(store)
    assert len(after) == 10 and [p["index"] for p in params] == [0, 1, 2, 3, 4] * 2
    assert np.array_equal(after[[0, 1, 2, 5, 6, 7]], before)
