"""Materials from (seed, index), the resumable crystal store, and the material split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uedsteer.sim_devices.crystals.dataset import load_crystal_dataset, split_by_material
from uedsteer.sim_devices.crystals.settings import CrystalDatasetSpec, CrystalGenSettings
from uedsteer.sim_devices.crystals.simulate import simulate_material
from uedsteer.sim_devices.crystals.store import _write_chunk, write_crystal_dataset

FAST = CrystalGenSettings(method="kinematic", zone_axes=4, max_atoms=16, max_index=2)


def test_material_depends_only_on_seed_and_index():
    one = simulate_material(7, 11, FAST)
    two = simulate_material(7, 11, FAST)
    assert one["info"] == two["info"]
    for x, y in zip(one["bragg"], two["bragg"], strict=True):
        np.testing.assert_array_equal(x, y)
    assert one["info"]["system"] == FAST.systems[7 % len(FAST.systems)]
    for bragg in one["bragg"]:
        assert bragg.shape[1] == 3
        np.testing.assert_allclose(bragg[0, :2], 0.0)  # central beam first
        assert np.hypot(bragg[:, 0], bragg[:, 1]).max() <= FAST.k_max + 1e-6


def test_store_resumes_and_refuses_a_different_spec(tmp_path):
    spec = CrystalDatasetSpec(n_materials=5, seed=2, chunk=2, settings=FAST)
    out = tmp_path / "crystals"
    write_crystal_dataset(out, spec, n_workers=1, progress=False)
    full = load_crystal_dataset(out)
    assert sorted(set(full.material.tolist())) == [0, 1, 2, 3, 4]
    # lose one chunk, keep a stray temporary file: the resume rewrites it identically
    (out / "chunks" / "chunk_00001.npz").unlink()
    (out / "chunks" / "chunk_00001.tmp99.npz").write_bytes(b"partial")
    meta = json.loads((out / "spec.json").read_text())
    meta["complete"] = False
    (out / "spec.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="incomplete"):
        load_crystal_dataset(out)
    partial = load_crystal_dataset(out, allow_incomplete=True)
    assert set(partial.material.tolist()) == {0, 1, 4}
    _write_chunk(out, 1, 2, 4, spec.seed, FAST)  # what the resumed task does
    write_crystal_dataset(out, spec, n_workers=1, progress=False)
    again = load_crystal_dataset(out)
    assert len(again) == len(full)
    for x, y in zip(full.bragg, again.bragg, strict=True):
        np.testing.assert_array_equal(x, y)
    other = CrystalDatasetSpec(n_materials=5, seed=3, chunk=2, settings=FAST)
    with pytest.raises(ValueError, match="different configuration"):
        write_crystal_dataset(out, other, n_workers=1, progress=False)
    with pytest.raises(FileNotFoundError, match="uedsteer generate crystals"):
        load_crystal_dataset(tmp_path / "nothing")


def test_split_is_by_material():
    material = np.repeat(np.arange(40), 7)
    train, test = split_by_material(material, test_fraction=0.25, seed=1)
    assert not set(material[train]) & set(material[test])
    assert len(set(material[test])) == 10
    assert (train | test).all()
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_material(material, test_fraction=1.5)


def test_random_orientations_and_concatenated_stores(tmp_path):
    from uedsteer.sim_devices.crystals.dataset import concatenate_datasets

    settings = FAST.model_copy(update={"random_orientations": 2})
    m = simulate_material(2, 5, settings)
    assert len(m["bragg"]) == len(m["zone_axes"])
    np.testing.assert_array_equal(m["zone_axes"][-2:], 0)
    assert np.any(m["zone_axes"][:-2] != 0, axis=1).all()
    for bragg in m["bragg"][-2:]:
        np.testing.assert_allclose(bragg[0, :2], 0.0)
    a_spec = CrystalDatasetSpec(n_materials=2, seed=1, chunk=2, settings=FAST)
    b_spec = CrystalDatasetSpec(n_materials=2, seed=2, chunk=2, settings=settings)
    stores = [
        write_crystal_dataset(tmp_path / name, spec, n_workers=1, progress=False)
        for name, spec in (("a", a_spec), ("b", b_spec))
    ]
    a, b = (load_crystal_dataset(path) for path in stores)
    both = concatenate_datasets([a, b])
    assert len(both) == len(a) + len(b)
    assert len(np.unique(both.material)) == 4  # material 0 of each store stays two materials
    assert both.spec["also"][0]["seed"] == 2
