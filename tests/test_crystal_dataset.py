"""Random crystals, the resumable crystal store, the material split and the training CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from uedsteer.sim_devices.crystal_dataset import (
    CRYSTAL_SYSTEMS,
    CrystalDatasetSpec,
    CrystalGenSettings,
    _write_chunk,
    load_crystal_dataset,
    random_crystal,
    simulate_material,
    split_by_material,
    system_of_space_group,
    write_crystal_dataset,
)

FAST = CrystalGenSettings(method="kinematic", zone_axes=4, max_atoms=16, max_index=2)


@pytest.mark.parametrize("source", ["prototype", "wyckoff", "random"])
@pytest.mark.parametrize("system", CRYSTAL_SYSTEMS)
def test_random_crystal_has_the_symmetry_it_claims(system, source):
    import spglib

    rng = np.random.default_rng([3, CRYSTAL_SYSTEMS.index(system)])
    settings = CrystalGenSettings(max_atoms=24, sources={source: 1.0})
    atoms, info = random_crystal(system, rng, settings)
    assert info["system"] == system and info["source"] == source
    assert system_of_space_group(info["space_group"]) == system
    assert len(atoms) <= 24 and info["volume"] <= 1000
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    found = spglib.get_symmetry_dataset(cell, symprec=1e-2).number
    # spglib may find a supergroup of the drawn group, never a different crystal system below it
    assert found >= info["space_group"] or system_of_space_group(found) == system
    a, b, c, alpha, beta, gamma = info["lattice"]
    if system == "cubic":
        assert a == pytest.approx(b) == pytest.approx(c)
    if system in ("hexagonal", "trigonal"):
        assert a == pytest.approx(b) and gamma == pytest.approx(120, abs=1e-6)
    if system == "monoclinic":
        assert alpha == pytest.approx(90) and gamma == pytest.approx(90)


def test_prototype_keeps_its_structure_type_with_new_elements():
    import spglib

    from uedsteer.sim_devices.crystal_dataset import _prototypes

    settings = CrystalGenSettings(sources={"prototype": 1.0})
    for k in range(6):
        rng = np.random.default_rng([9, k])
        atoms, info = random_crystal("cubic", rng, settings)
        proto = next(p for p in _prototypes() if p[3] == info["tag"])
        assert info["space_group"] == proto[1]
        cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
        assert spglib.get_symmetry_dataset(cell, symprec=1e-3).number == proto[1]
        # same arrangement, other elements: as many distinct species as the prototype
        assert len(set(atoms.get_chemical_symbols())) == len(set(proto[2]["species"]))


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


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="triclinic"):
        CrystalGenSettings(systems=("triclinic",))
    with pytest.raises(ValueError, match="zone_axes"):
        CrystalGenSettings(zone_axes=0)
    with pytest.raises(ValueError, match="sources"):
        CrystalGenSettings(sources={"icsd": 1.0})
    with pytest.raises(ValueError, match="space_group=1 "):
        system_of_space_group(1)


def test_cli_generate_train_and_stem_map(tmp_path, capsys):
    """The README's crystal commands end to end on a tiny store (kinematic, small forests)."""
    from uedsteer.controller.cli import main

    store, model = tmp_path / "crystals", tmp_path / "model"
    args = ["generate", "crystals", "--out", str(store), "--n-materials", "12", "--seed", "4"]
    args += ["--workers", "1", "--set", 'method="kinematic"', "--set", "zone_axes=6"]
    assert main(args) == 0
    args = ["train", "crystal", "--data", str(store), "--out", str(model), "--threads", "1"]
    args += ["--system-trees", "8", "--space-group-trees", "8", "--lattice-trees", "8"]
    args += ["--max-features", "sqrt"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "crystal system, single pattern" in text and "10-pattern aggregate" in text
    metrics = json.loads((model / "crystal_metrics.json").read_text())
    assert metrics["split"]["by"] == "material"
    assert (model / "crystal_confusion_single.png").stat().st_size > 1000
    assert metrics["test_materials"] == 3 and metrics["train_materials"] == 9
    assert metrics["lattice_weighting"] == "cell_size" and metrics["lattice_target"] == "direct"
    args = ["stem", "--nx", "6", "--ny", "5", "--model", str(model)]
    args += ["--catalog", str(tmp_path / "cat"), "--out", str(tmp_path / "stem")]
    assert main(args) == 0
    assert "median lattice constant" in capsys.readouterr().out
    assert (tmp_path / "stem" / "stem_crystal_maps.png").exists()


def test_random_orientations_and_concatenated_stores(tmp_path):
    from uedsteer.sim_devices.crystal_dataset import concatenate_datasets

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


def test_cell_size_weights_follow_the_atoms_in_the_cell():
    from uedsteer.sim_devices.crystal_dataset import CrystalDataset
    from uedsteer.surrogates.crystal.train import cell_size_weights, train_crystal

    n = 3
    data = CrystalDataset(
        bragg=[np.zeros((1, 3))] * n,
        material=np.arange(n),
        zone_axis=np.zeros((n, 3), dtype=int),
        system=np.array(["cubic"] * n),
        space_group=np.array([225] * n),
        lattice=np.ones((n, 6)),
        formula=np.array(["Au4", "Ga8O8", "Na4Cl4"]),
        source=np.array(["prototype"] * n),
        spec={},
    )
    np.testing.assert_allclose(cell_size_weights(data), [0.5, 0.25, 1 / np.sqrt(8)])
    with pytest.raises(ValueError, match="lattice_weighting='atoms' is not known"):
        train_crystal(data, lattice_weighting="atoms")
