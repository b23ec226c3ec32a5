"""The zarr frame store: round trip, resume after an interruption, refusal of another config."""

import json

import numpy as np
import pytest
import zarr

from uedsteer.sim_devices.frame_store import DatasetSpec, load_dataset, write_dataset
from uedsteer.sim_devices.frames import GeneratorSettings, generate_frames

SMALL = {"base_size": (12, 7)}


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


def test_point_sampled_stores_keep_their_config_and_integrated_ones_are_told_apart(store, spec):
    """A default store records no ``oversample`` (stores written before the setting existed
    still resume); one asked with pixels integrated is another configuration, named."""
    config = zarr.open_group(str(store), mode="r").attrs["config"]
    assert "oversample" not in config["settings"]
    assert GeneratorSettings.model_validate(config["settings"]).oversample == 1
    integrated = spec.model_copy(update={"settings": GeneratorSettings(**SMALL, oversample=3)})
    with pytest.raises(ValueError, match="settings.oversample"):
        write_dataset(store, integrated, n_workers=1, progress=False)
    point, _ = generate_frames("ref_2H", 1, seed=3, **SMALL)
    pixel, _ = generate_frames("ref_2H", 1, seed=3, **SMALL, oversample=3)
    assert point.shape == pixel.shape and not np.array_equal(point, pixel)
    with pytest.raises(ValueError, match="oversample=4 is not allowed: give an odd integer"):
        GeneratorSettings(oversample=4)
