"""Training the crystal predictor on a crystal store: the CLI end to end, the lattice weights."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_cli_generate_train_and_stem_map(tmp_path, capsys):
    """The README's crystal commands end to end on a tiny store (kinematic, small forests):
    the default zone features and compact models trained on measured-like spot positions, a
    model card with the files' hashes."""
    from uedsteer.controller.cli import main
    from uedsteer.surrogates.crystal.persistence import sha256_of

    store, model = tmp_path / "crystals", tmp_path / "model"
    args = ["generate", "crystals", "--out", str(store), "--n-materials", "12", "--seed", "4"]
    args += ["--workers", "1", "--set", 'method="kinematic"', "--set", "zone_axes=6"]
    assert main(args) == 0
    args = ["train", "crystal", "--data", str(store), "--out", str(model), "--threads", "1"]
    args += ["--space-group-trees", "8", "--lattice-trees", "8", "--max-features", "sqrt"]
    args += ["--position-jitter", "0.003"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "crystal system, single pattern" in text and "10-pattern aggregate" in text
    metrics = json.loads((model / "crystal_metrics.json").read_text())
    assert metrics["split"]["by"] == "material"
    assert (model / "crystal_confusion_single.png").stat().st_size > 1000
    assert metrics["test_materials"] == 3 and metrics["train_materials"] == 9
    assert metrics["lattice_weighting"] == "cell_size" and metrics["lattice_target"] == "scaled"
    assert metrics["features"] == "zone" and metrics["estimators"] == "compact"
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["hyperparameters"]["system_estimator"] == "boosting"
    assert meta["simulation"]["stores"][0]["method"] == "kinematic"
    assert meta["simulation"]["min_intensity"] == 1e-5
    card = (model / "MODEL_CARD.md").read_text()
    assert sha256_of(model / "models.skops") in card and sha256_of(model / "metadata.json") in card
    assert "* command: `uedsteer " in card and "| Au (fcc) | cubic | 225 |" in card
    assert metrics["position_jitter"] == 0.003 and "from 0 to 0.003 1/Å" in card
    assert {r["name"] for r in metrics["reference_structures"]} >= {"Au (fcc)", "NaCl (rock salt)"}
    args = ["stem", "--nx", "6", "--ny", "5", "--model", str(model)]
    args += ["--catalog", str(tmp_path / "cat"), "--out", str(tmp_path / "stem")]
    assert main(args) == 0
    assert "median lattice constant" in capsys.readouterr().out
    assert (tmp_path / "stem" / "stem_crystal_maps.png").exists()


def test_the_paper_preset_keeps_the_forests_and_the_compact_one_has_no_system_trees(tmp_path):
    from uedsteer.controller.cli import main
    from uedsteer.sim_devices.crystals.dataset import load_crystal_dataset
    from uedsteer.surrogates.crystal.train import train_crystal

    store = tmp_path / "crystals"
    args = ["generate", "crystals", "--out", str(store), "--n-materials", "8", "--seed", "5"]
    args += ["--workers", "1", "--set", 'method="kinematic"', "--set", "zone_axes=4"]
    assert main(args) == 0
    small = {"n_estimators": 6}
    predictor, metrics = train_crystal(
        load_crystal_dataset(store),
        out=tmp_path / "paper",
        estimators="paper",
        features="radial",
        system_params=small,
        space_group_params=small,
        lattice_params=small,
        n_jobs=1,
        progress=False,
        reference=False,
    )
    assert predictor.system_estimator == "forest" and metrics["lattice_target"] == "direct"
    assert predictor.system_model_.n_estimators == 6
    with pytest.raises(SystemExit):
        main(["train", "crystal", "--data", str(store), "--system-trees", "8"])


def test_cell_size_weights_follow_the_atoms_in_the_cell():
    from uedsteer.sim_devices.crystals.dataset import CrystalDataset
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


def test_a_store_of_some_systems_trains_only_their_sub_models(tmp_path, monkeypatch):
    """A cubic-only store adds cubic space-group data, whole, without biasing the crystal-system,
    material or lattice models, or entering the held-out set."""
    from uedsteer.controller.cli import main
    from uedsteer.sim_devices.crystals.dataset import (
        STORE_OFFSET,
        concatenate_datasets,
        load_crystal_dataset,
        split_by_material,
    )
    from uedsteer.surrogates.crystal import fitting
    from uedsteer.surrogates.crystal.train import partial_store_rows, train_crystal

    common = ["--workers", "1", "--set", 'method="kinematic"', "--set", "zone_axes=4"]
    for name, seed, extra in (("all", "5", []), ("cubic", "6", ["--set", 'systems=["cubic"]'])):
        args = ["generate", "crystals", "--out", str(tmp_path / name), "--n-materials", "12"]
        assert main([*args, "--seed", seed, *common, *extra]) == 0
    data = concatenate_datasets([load_crystal_dataset(tmp_path / n) for n in ("all", "cubic")])
    partial = partial_store_rows(data)
    assert partial.any() and (data.system[partial] == "cubic").all()
    np.testing.assert_array_equal(partial, data.material >= STORE_OFFSET)
    seen = []
    real = fitting.fit_system_model
    monkeypatch.setattr(
        fitting, "fit_system_model", lambda p, x, s: seen.append(len(x)) or real(p, x, s)
    )
    lattice_rows = []

    class Regressor(fitting.RandomForestRegressor):
        def fit(self, x, y, sample_weight=None):
            lattice_rows.append(len(x))
            return super().fit(x, y, sample_weight=sample_weight)

    monkeypatch.setattr(fitting, "RandomForestRegressor", Regressor)
    small = {"n_estimators": 4}
    predictor, metrics = train_crystal(
        data,
        out=tmp_path / "model",
        system_params={"max_iter": 5},
        space_group_params=small,
        lattice_params=small,
        n_jobs=1,
        progress=False,
        reference=False,
    )
    assert metrics["test_materials"] == 3  # 25 % of the full store's 12 materials
    assert metrics["train_materials"] == 9 + 12  # the cubic store's whole
    valid = predictor.features(data.bragg)[1]
    test = np.zeros(len(data), bool)
    test[~partial] = split_by_material(data.material[~partial], 0.25, 0)[1]
    assert seen[0] == np.sum(valid & ~partial & ~test)  # the system classifier: full store only
    full_cubic = valid & ~partial & ~test & (data.system == "cubic")
    assert lattice_rows[0] <= np.sum(full_cubic)  # the cubic lattice forest: full store only
    assert predictor.training_sizes_["cubic"] > np.sum(data.system[~partial] == "cubic")
    assert load_crystal_dataset(tmp_path / "cubic").spec["settings"]["systems"] == ["cubic"]
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "| 2 | 6 | 12 | cubic |" in card and "| 1 | 5 | 12 | all |" in card
