import json

import numpy as np
import pytest
import zarr

from uedsteer.sim_devices.dataset import (
    COLUMNS,
    LABELS,
    MATERIAL,
    DatasetSpec,
    GeneratorSettings,
    generate_frames,
    load_dataset,
    write_dataset,
)
from uedsteer.sim_devices.materials import MOTE2

SMALL = {"base_size": (12, 7)}
CLASSES = MOTE2.class_names


def test_stores_hold_the_default_materials_labels():
    assert MATERIAL is MOTE2 and LABELS == MOTE2.labels
    assert CLASSES[0] == "ref_2H" and CLASSES[7] == "degraded" and len(CLASSES) == 8
    assert LABELS[-1] == "interpolated"


@pytest.mark.parametrize("label", LABELS)
def test_every_label_generates_with_its_parameters(label):
    frames, params = generate_frames(label, 2, seed=3, **SMALL)
    assert frames.shape == (2, 261, 261) and frames.dtype == np.float32
    assert np.all(np.isfinite(frames))
    for p in params:
        assert set(COLUMNS) <= set(p) and p["label"] == label and p["seed"] == 3
    p = params[0]
    if label.startswith("vacancy"):
        assert 0.05 <= p["mo_vacancy"] <= 0.2 and 0.05 <= p["te_vacancy"] <= 0.2
    if label.startswith("deform"):
        assert max(abs(p["strain_xx"]), abs(p["strain_yy"]), abs(p["strain_xy"])) >= 0.02
    if label.startswith("phonon"):
        assert p["mode"] and p["mode_frequency_cm1"] > 10 and p["phonon_amplitude"] > 0
        phase, mode = p["mode"].split("/")
        assert MOTE2.modes(phase).inplane_fraction(mode) >= 0.5, "visible in-plane mode"
    if label == "degraded":
        assert p["mo_vacancy"] >= 0.9
    assert p["phase"] == ("1T'" if label.endswith("1Tp") else "2H")


def test_same_seed_same_frames_different_seed_different():
    a, pa = generate_frames("vacancy_2H", 3, seed=11, **SMALL)
    b, pb = generate_frames("vacancy_2H", 3, seed=11, **SMALL)
    c, _ = generate_frames("vacancy_2H", 3, seed=12, **SMALL)
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)
    # a frame depends on (seed, label, index) only, not on how the work is split
    tail, _ = generate_frames("vacancy_2H", 2, seed=11, start=1, **SMALL)
    assert np.array_equal(tail, a[1:])


def test_interpolated_fractions_are_honoured():
    _, params = generate_frames("interpolated", 3, seed=0, x=[0.0, 0.5, 1.0], **SMALL)
    assert [p["x"] for p in params] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="x values"):
        generate_frames("interpolated", 2, x=[0.2, 1.3], **SMALL)
    with pytest.raises(ValueError, match="only allowed"):
        generate_frames("ref_2H", 1, x=0.3, **SMALL)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"label": "2H"}, "label="),
        ({"n": 0}, "n="),
        ({"vacancy_fraction": (-0.1, 0.2)}, "vacancy_fraction"),
        ({"noise_level": (0.2, 1.5)}, "noise_level"),
        ({"grid_n": 260}, "n=260"),
        ({"not_a_field": 1}, "not_a_field"),
    ],
)
def test_bad_generator_input(kwargs, match):
    args = {"label": "ref_2H", "n": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_frames(args.pop("label"), args.pop("n"), **args)


@pytest.fixture(scope="module")
def spec():
    return DatasetSpec(
        labels=("ref_2H", "phonon_1Tp", "interpolated"),
        n_per_label=5,
        seed=7,
        chunk=2,
        settings=GeneratorSettings(**SMALL),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory, spec):
    path = tmp_path_factory.mktemp("data") / "train.zarr"
    write_dataset(path, spec, n_workers=1, progress=False)
    return path


def test_store_round_trips_labels_and_parameters(store, spec):
    frames, params = load_dataset(store)
    assert frames.shape == (15, 261, 261)
    for label in spec.labels:
        expect_f, expect_p = generate_frames(label, 5, seed=7, **SMALL)
        got = [i for i, p in enumerate(params) if p["label"] == label]
        assert np.array_equal(frames[got], expect_f)
        for g, e in zip((params[i] for i in got), expect_p, strict=True):
            assert g.keys() == e.keys()
            for key in e:
                assert (
                    g[key] == pytest.approx(e[key])
                    if isinstance(e[key], float)
                    else g[key] == e[key]
                )
    assert zarr.open_group(str(store), mode="r").attrs["complete"] is True


def test_resume_redoes_only_unfinished_chunks(tmp_path, spec):
    path = tmp_path / "resume.zarr"
    write_dataset(path, spec, n_workers=1, progress=False)
    before, _ = load_dataset(path)
    root = zarr.open_group(str(path), mode="r+")
    # simulate an interruption: chunk 1 of one label lost its data and its done flag
    root["phonon_1Tp"]["frames"][2:4] = np.nan
    done = root["phonon_1Tp"]["done"][:]
    done[1] = False
    root["phonon_1Tp"]["done"][:] = done
    root.attrs["complete"] = False
    with pytest.raises(ValueError, match="incomplete"):
        load_dataset(path)
    partial, _ = load_dataset(path, allow_incomplete=True)
    assert len(partial) == 13
    untouched = root["ref_2H"]["frames"][:]
    write_dataset(path, spec, n_workers=1, progress=False)
    after, _ = load_dataset(path)
    assert np.array_equal(before, after)
    assert np.array_equal(untouched, zarr.open_group(str(path))["ref_2H"]["frames"][:])


def test_existing_store_with_other_config_is_refused(store, spec):
    other = spec.model_copy(update={"seed": 8})
    stamp = json.dumps(zarr.open_group(str(store), mode="r").attrs["config"], sort_keys=True)
    with pytest.raises(ValueError, match="different configuration"):
        write_dataset(store, other, n_workers=1, progress=False)
    assert (
        json.dumps(zarr.open_group(str(store), mode="r").attrs["config"], sort_keys=True) == stamp
    )


def test_cli_generate_and_error_message(tmp_path, capsys):
    from uedsteer.controller.cli import main

    out = tmp_path / "cli.zarr"
    args = [
        "generate",
        "--out",
        str(out),
        "--labels",
        "degraded",
        "--n-per-label",
        "2",
        "--chunk",
        "2",
        "--workers",
        "1",
        "--set",
        "base_size=[10,6]",
    ]
    assert main(args) == 0
    frames, params = load_dataset(out)
    assert len(frames) == 2 and params[0]["label"] == "degraded"
    assert main([*args[:-1], "base_size=[11,6]"]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_cnn_arrays_read_stores_with_some_of_the_classes(store):
    """Extra training stores may hold a subset of the classes (hard examples): each frame is
    labelled by its class, labels a CNN does not know (interpolated) are left out."""
    from uedsteer.surrogates.train_models import cnn_arrays

    refs, _ = load_dataset(store, ["ref_2H"])
    x, y = cnn_arrays([store, store], refs.mean(axis=0))
    assert x.shape == (20, 2, 87, 87)
    counts = {CLASSES[k]: int((y == k).sum()) for k in y.unique().tolist()}
    assert counts == {"ref_2H": 10, "phonon_1Tp": 10}
