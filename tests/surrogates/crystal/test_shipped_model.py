"""The crystal model shipped in the package: it loads on a fresh install (compressed, hash
checked, no pickle code), it is package data, it records the simulation convention, and the
guide's snippet reads gold, rock salt and zinc blende with it."""

from __future__ import annotations

import fnmatch
import json
import shutil
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from uedsteer.surrogates.crystal.persistence import (
    CARD_FILE,
    METADATA_FILE,
    MODEL_FILE,
    SHIPPED_MODEL_DIR,
    model_source,
    sha256_of,
)
from uedsteer.surrogates.crystal.predictor import CrystalPredictor
from uedsteer.surrogates.crystal.reference_structures import (
    REFERENCE_STRUCTURES,
    reference_bragg_lists,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def guide_reads(shipped):
    """The guide's snippet for the first three textbook crystals: name → aggregate."""
    guide = REFERENCE_STRUCTURES[:3]
    return {s.name: shipped.predict_aggregate(reference_bragg_lists(s)) for s in guide}


def test_the_shipped_files_are_small_compressed_package_data():
    files = sorted(p for p in SHIPPED_MODEL_DIR.iterdir() if p.is_file())
    names = {p.name for p in files}
    assert {MODEL_FILE, METADATA_FILE, CARD_FILE} <= names
    assert sum(p.stat().st_size for p in files) <= 40e6, "the guide's budget: 40 MB in all"
    with zipfile.ZipFile(SHIPPED_MODEL_DIR / MODEL_FILE) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    meta = json.loads((SHIPPED_MODEL_DIR / METADATA_FILE).read_text())
    assert meta["files"][MODEL_FILE]["sha256"] == sha256_of(SHIPPED_MODEL_DIR / MODEL_FILE)
    card = (SHIPPED_MODEL_DIR / CARD_FILE).read_text()
    for p in files:
        if p.name != CARD_FILE:
            assert sha256_of(p) in card, f"the card lists {p.name}'s hash"
    assert "* command: `uedsteer train crystal --data" in card
    # a non-editable install takes every file: each matches the package-data globs
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["uedsteer.surrogates.crystal"]
    for p in files:
        assert any(fnmatch.fnmatch(f"model/{p.name}", g) for g in globs), p.name


def test_load_without_a_folder_takes_the_users_model_else_the_shipped_one(
    tmp_path, monkeypatch, shipped
):
    monkeypatch.setenv("UEDSTEER_DATA", str(tmp_path))
    assert model_source() == SHIPPED_MODEL_DIR
    loaded = CrystalPredictor.load()
    assert loaded.metadata_["files"] == shipped.metadata_["files"]
    # only sklearn and numpy types in the file (nothing else is let in)
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=SHIPPED_MODEL_DIR / MODEL_FILE)
    assert all(t.startswith(("sklearn.", "numpy.")) for t in untrusted)
    # a model of the user's own wins once it is there (the shipped files, its own metrics)
    mine = _copy_of_the_shipped_files(tmp_path / "crystal")
    meta = json.loads((mine / METADATA_FILE).read_text())
    (mine / METADATA_FILE).write_text(json.dumps({**meta, "metrics": {"mine": True}}))
    assert model_source() == tmp_path / "crystal"
    assert CrystalPredictor.load().metadata_["metrics"] == {"mine": True}


def _copy_of_the_shipped_files(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in (MODEL_FILE, METADATA_FILE):
        shutil.copyfile(SHIPPED_MODEL_DIR / name, folder / name)
    return folder


def test_a_changed_model_file_is_refused(tmp_path):
    folder = _copy_of_the_shipped_files(tmp_path / "m")
    with open(folder / MODEL_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        CrystalPredictor.load(folder)


def test_the_compressed_round_trip_gives_identical_predictions(tmp_path, shipped):
    lists = [b for s in REFERENCE_STRUCTURES for b in reference_bragg_lists(s, n_zone_axes=4)]
    folder = shipped.save(tmp_path / "copy")
    with zipfile.ZipFile(folder / MODEL_FILE) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    loaded = CrystalPredictor.load(folder)
    before, after = shipped.predict(lists), loaded.predict(lists)
    for field in ("crystal_system", "system_votes", "space_group", "lattice", "valid"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
    agg_before, agg_after = (
        shipped.predict_aggregate(lists[:4]),
        loaded.predict_aggregate(lists[:4]),
    )
    assert agg_after.system_weights == agg_before.system_weights
    np.testing.assert_array_equal(agg_after.lattice, agg_before.lattice)
    assert loaded.simulation_ == shipped.simulation_


def test_the_metadata_records_the_simulation_convention(shipped):
    from uedsteer.sim_devices.physics.bragg import SIMULATION_CONVENTION

    record = shipped.simulation_
    assert record["k_max"] == SIMULATION_CONVENTION["k_max"]
    assert record["min_intensity"] == SIMULATION_CONVENTION["min_intensity"]
    assert len(record["stores"]) == 6
    for store in record["stores"]:
        for key in ("voltage_kv", "k_max", "sg_max", "thermal_sigma", "min_intensity"):
            assert store[key] == SIMULATION_CONVENTION[key], key
        assert store["method"] == "dynamical"
    assert {s["seed"] for s in record["stores"]} == {21, 23, 25, 33, 27, 29}


def test_the_guide_snippet_reads_gold_as_fcc_gold(guide_reads):
    gold = guide_reads["Au (fcc)"]
    assert gold.crystal_system == "cubic"
    assert gold.aggregation == "learned"  # the shipped model reads a material's set of zones
    assert gold.space_group == 225  # Fm-3m
    np.testing.assert_allclose(gold.lattice, 4.08, atol=0.05)
    assert gold.n_patterns == 10


@pytest.mark.parametrize(("name", "a"), [("NaCl (rock salt)", 5.64), ("ZnS (zinc blende)", 5.41)])
def test_the_guide_snippet_reads_rock_salt_and_zinc_blende_as_cubic(guide_reads, name, a):
    read = guide_reads[name]
    assert read.crystal_system == "cubic"
    np.testing.assert_allclose(read.lattice, a, atol=0.05)
