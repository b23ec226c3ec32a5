"""Hierarchical random forests: tree votes, difference aggregation, routing, save and load."""

from __future__ import annotations

import numpy as np
import pytest

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS
from uedsteer.surrogates.crystal.features import N_FEATURES, radial_basis
from uedsteer.surrogates.crystal.predictor import CrystalPredictor
from uedsteer.surrogates.crystal.votes import difference_aggregate, difference_weight

SMALL = {"n_estimators": 10}


# ---------------------------------------------------------------------- aggregation


def test_difference_aggregation_paper_example():
    # columns: cubic, hexagonal, trigonal, tetragonal, orthorhombic, monoclinic (80 trees)
    votes = np.array(
        [
            [5, 4, 47, 4, 0, 20],  # trigonal, runner-up monoclinic 20
            [19, 15, 26, 10, 6, 4],  # trigonal, runner-up cubic 19
            [15, 10, 21, 24, 6, 4],  # tetragonal, runner-up trigonal 21
        ]
    )
    np.testing.assert_allclose(difference_weight(votes), [0.3375, 0.0875, 0.0375])
    label, confidence, weights = difference_aggregate(votes, CRYSTAL_SYSTEMS)
    assert label == "trigonal"
    assert confidence == pytest.approx((0.3375 + 0.0875) / (0.3375 + 0.0875 + 0.0375))
    assert weights["trigonal"] == pytest.approx(0.425)
    assert weights["tetragonal"] == pytest.approx(0.0375)
    assert weights["cubic"] == 0.0
    # all ties: no weight at all → most votes overall, confidence 0
    label, confidence, _ = difference_aggregate(np.array([[40, 40], [30, 30]]), ["a", "b"])
    assert (label, confidence) == ("a", 0.0)
    with pytest.raises(ValueError, match="labels"):
        difference_aggregate(votes, ["cubic"])


# --------------------------------------------------------------------------- hierarchy

SUBSETS = {"cubic": (221, 225), "hexagonal": (191, 194), "tetragonal": (123,)}
BASE_LATTICE = {
    "cubic": (4.0, 4.0, 4.0),
    "hexagonal": (3.0, 3.0, 5.0),
    "tetragonal": (6.0, 6.0, 9.0),
}


def synthetic_features(rng, n_per_system):
    """Features where column 0 encodes the system, column 1 the space group, column 2 the size."""
    rows, systems, groups, lattices = [], [], [], []
    for k, system in enumerate(SUBSETS):
        x = rng.normal(0.0, 1.0, (n_per_system, N_FEATURES))
        x[:, 0] = 3 * k + rng.uniform(0, 1, n_per_system)
        choice = (x[:, 1] > 0).astype(int) % len(SUBSETS[system])
        rows.append(x)
        systems += [system] * n_per_system
        groups.append(np.asarray(SUBSETS[system])[choice])
        lattices.append(np.asarray(BASE_LATTICE[system]) * (1 + 0.05 * x[:, 2:3].clip(-1, 1)))
    return np.vstack(rows), np.array(systems), np.concatenate(groups), np.vstack(lattices)


@pytest.fixture(scope="module")
def routed():
    rng = np.random.default_rng(6)
    x, systems, groups, lattices = synthetic_features(rng, 60)
    params = {"n_estimators": 10}
    model = CrystalPredictor(
        system_params=params, space_group_params=params, lattice_params=params, n_jobs=1
    )
    return model.fit(x, systems, groups, lattices, progress=False), rng


def test_hierarchy_routes_to_the_predicted_system(routed):
    model, rng = routed
    assert model.trained_systems == ("cubic", "hexagonal", "tetragonal")
    assert model.space_group_models_["tetragonal"] is None  # a single space group
    x, systems, _, _ = synthetic_features(rng, 15)
    x[4] = np.nan
    pred = model.predict(features=x)
    ok = pred.valid
    assert ok.sum() == len(x) - 1 and pred.crystal_system[4] == "" and pred.space_group[4] == 0
    assert np.isnan(pred.lattice[4]).all()
    assert np.mean(pred.crystal_system[ok] == systems[ok]) > 0.9
    for i in np.flatnonzero(ok):
        system = pred.crystal_system[i]
        assert pred.space_group[i] in SUBSETS[system]
        np.testing.assert_allclose(pred.lattice[i], BASE_LATTICE[system], rtol=0.06)
    assert (pred.system_votes[ok].sum(axis=1) == 10).all()
    top = pred.system_votes[ok].max(axis=1)
    np.testing.assert_allclose(pred.system_confidence[ok], top / 10)
    tetra = ok & (pred.crystal_system == "tetragonal")
    assert (pred.space_group[tetra] == 123).all()
    assert (pred.space_group_confidence[tetra] == 1.0).all()
    assert pred.row(0)["crystal_system"] == pred.crystal_system[0]
    assert len(pred.to_dataframe()) == len(x)

    # forcing the route swaps the sub-models but not the reported system
    cubic = x[systems == "cubic"][5:10]
    forced = model.predict(features=cubic, route_to="hexagonal")
    assert (forced.routed_system == "hexagonal").all()
    assert (forced.crystal_system == "cubic").all()
    assert set(forced.space_group.tolist()) <= set(SUBSETS["hexagonal"])
    np.testing.assert_allclose(
        forced.lattice, np.tile(BASE_LATTICE["hexagonal"], (5, 1)), rtol=0.06
    )
    with pytest.raises(ValueError, match="route_to='monoclinic'"):
        model.predict(features=cubic, route_to="monoclinic")


def test_mocked_system_votes_change_the_sub_model(routed, monkeypatch):
    model, rng = routed
    x = synthetic_features(rng, 4)[0][:4]  # cubic patterns
    hexagonal_votes = np.zeros((4, 6), dtype=np.int64)
    hexagonal_votes[:, CRYSTAL_SYSTEMS.index("hexagonal")] = 10
    monkeypatch.setattr(model, "_system_votes", lambda x32: hexagonal_votes[: len(x32)])
    pred = model.predict(features=x)
    assert (pred.crystal_system == "hexagonal").all()
    assert set(pred.space_group.tolist()) <= set(SUBSETS["hexagonal"])
    agg = model.predict_aggregate(features=x)
    assert agg.crystal_system == "hexagonal" and agg.confidence == 1.0
    assert agg.space_group in SUBSETS["hexagonal"]


def test_aggregate_uses_the_winning_system(routed):
    model, rng = routed
    x, systems, _, _ = synthetic_features(rng, 10)
    cubic = x[systems == "cubic"]
    cubic[0] = np.nan
    agg = model.predict_aggregate(features=cubic)
    assert agg.crystal_system == "cubic" and agg.confidence > 0.9
    assert agg.n_patterns == 9 and agg.n_rejected == 1
    assert agg.space_group in SUBSETS["cubic"]
    assert set(agg.space_group_weights) == set(SUBSETS["cubic"])
    np.testing.assert_allclose(agg.lattice, BASE_LATTICE["cubic"], rtol=0.05)
    with pytest.raises(ValueError, match="none of the 2 patterns is valid"):
        model.predict_aggregate(features=np.full((2, N_FEATURES), np.nan))
    # a known system: its sub-models, while the reported system stays the aggregate
    forced = model.predict_aggregate(features=cubic, route_to="hexagonal")
    assert forced.crystal_system == "cubic" and forced.space_group in SUBSETS["hexagonal"]
    np.testing.assert_allclose(forced.lattice, BASE_LATTICE["hexagonal"], rtol=0.06)
    with pytest.raises(ValueError, match="route_to='monoclinic'"):
        model.predict_aggregate(features=cubic, route_to="monoclinic")


def test_aggregate_space_group_scores_each_material_once(routed):
    from uedsteer.surrogates.crystal.evaluation import aggregate_draws, aggregate_space_group

    model, rng = routed
    x, systems, groups, lattices = synthetic_features(rng, 12)
    rows = systems == "cubic"
    material = np.repeat([0, 1, 2], 4)  # three materials of four patterns
    draws = aggregate_draws(material, 3, seed=1)
    assert [len(d) for d in draws] == [3, 3, 3]
    assert all(len(set(material[d])) == 1 for d in draws)
    truth = np.array([model.predict_aggregate(features=x[rows][d]).space_group for d in draws])
    sg = np.repeat(truth, 4)
    sg[8:] = 999  # the third material's true group is one the model cannot give
    out = aggregate_space_group(model, x[rows], material, sg, lattices[rows], "cubic", 3, 1)
    assert out["space_group_aggregate_given_system"] == pytest.approx(2 / 3)
    assert out["space_group_aggregate_hierarchical"] == pytest.approx(2 / 3)
    assert 0 <= out["lattice_mae_a_aggregate"] < 0.3


def test_predictor_argument_checks():
    with pytest.raises(ValueError, match="unknown RandomForestClassifier parameter"):
        CrystalPredictor(system_params={"n_trees": 5})
    model = CrystalPredictor(system_params=SMALL)
    assert model.system_params == {"n_estimators": 10, "max_depth": 40, "max_features": None}
    assert model.space_group_params["n_estimators"] == 128
    with pytest.raises(ValueError, match="crystal_system holds"):
        model.fit(np.zeros((2, N_FEATURES)), ["cubic", "triclinic"], [1, 2], np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, 1066\)"):
        model.fit(np.zeros((2, 5)), ["cubic", "cubic"], [1, 2], np.ones((2, 3)))
    with pytest.raises(ValueError, match="lattice_weight must hold 2 finite weights > 0"):
        model.fit(
            np.zeros((2, N_FEATURES)), ["cubic"] * 2, [1, 2], np.ones((2, 3)), lattice_weight=[1]
        )


# ------------------------------------------------------------------------- end to end

LATTICES_2D = {"cubic": "square", "hexagonal": "hexagonal", "orthorhombic": "rectangular"}
SPACE_GROUPS = {"cubic": (225, 221), "hexagonal": (194, 191), "orthorhombic": (62, 47)}


def point_lattice_pattern(rng, system):
    """Bragg list of a 2D reciprocal point lattice with random rotation and intensities."""
    a = rng.uniform(0.25, 0.45)
    if LATTICES_2D[system] == "square":
        b1, b2 = np.array([a, 0.0]), np.array([0.0, a])
    elif LATTICES_2D[system] == "hexagonal":
        b1, b2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    else:
        b1, b2 = np.array([a, 0.0]), np.array([0.0, a * rng.uniform(1.35, 1.8)])
    h, k = np.meshgrid(np.arange(-8, 9), np.arange(-8, 9))
    q = h.reshape(-1, 1) * b1 + k.reshape(-1, 1) * b2
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q = q @ rot.T + rng.normal(0, 0.002, q.shape)
    q = q[np.hypot(*q.T) < 1.3]
    intensity = np.exp(-(np.hypot(*q.T) ** 2) / 0.4) * rng.uniform(0.3, 1.0, len(q))
    intensity[np.hypot(*q.T) < 0.01] = 20.0  # central beam
    group = SPACE_GROUPS[system][int(a > 0.35)]
    lattice = np.array([1 / a, 1 / a, rng.uniform(4, 8)])
    return np.column_stack([q, intensity]), group, lattice


def make_dataset(rng, n_per_system):
    lists, systems, groups, lattices = [], [], [], []
    for system in LATTICES_2D:
        for _ in range(n_per_system):
            bragg, group, lattice = point_lattice_pattern(rng, system)
            lists.append(bragg)
            systems.append(system)
            groups.append(group)
            lattices.append(lattice)
    return lists, np.array(systems), np.array(groups), np.array(lattices)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(7)
    lists, systems, groups, lattices = make_dataset(rng, 80)
    features = radial_basis(lists)
    model = CrystalPredictor(
        system_params=SMALL, space_group_params=SMALL, lattice_params=SMALL, n_jobs=1
    )
    model.fit(features, systems, groups, lattices, progress=False)
    return model, make_dataset(rng, 20)


def test_end_to_end_accuracy_on_held_out_patterns(trained):
    model, (lists, systems, groups, lattices) = trained
    pred = model.predict(lists)
    assert pred.valid.all()
    accuracy = np.mean(pred.crystal_system == systems)
    assert accuracy > 0.8  # chance is 1/3
    for system in LATTICES_2D:
        rows = systems == system
        agg = model.predict_aggregate(lists[i] for i in np.flatnonzero(rows)[:10])
        assert agg.crystal_system == system
    right = pred.crystal_system == systems
    assert np.mean(pred.space_group[right] == groups[right]) > 0.7
    error = np.abs(pred.lattice[right, 0] - lattices[right, 0])
    assert np.median(error) < 0.3  # Å, a spans 2.2–4 Å


def test_save_load_round_trip(trained, tmp_path, monkeypatch):
    model, (lists, _, _, _) = trained
    folder = model.save(tmp_path / "crystal", metrics={"accuracy": 0.9})
    loaded = CrystalPredictor.load(folder)
    assert loaded.metadata_["metrics"] == {"accuracy": 0.9}
    assert loaded.metadata_["features"]["n_features"] == N_FEATURES
    before, after = model.predict(lists[:25]), loaded.predict(lists[:25])
    for field in ("crystal_system", "system_votes", "space_group", "lattice", "valid"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))
    assert loaded.predict_aggregate(lists[:5]).crystal_system == (
        model.predict_aggregate(lists[:5]).crystal_system
    )
    # default folder from $UEDSTEER_DATA
    monkeypatch.setenv("UEDSTEER_DATA", str(tmp_path))
    assert CrystalPredictor.load().training_sizes_ == model.training_sizes_


def test_load_refuses_missing_or_foreign_files(trained, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="uedsteer train crystal"):
        CrystalPredictor.load(tmp_path)
    monkeypatch.setenv("UEDSTEER_DATA", str(tmp_path / "nowhere"))
    from uedsteer.surrogates.crystal import persistence

    monkeypatch.setattr(persistence, "SHIPPED_MODEL_DIR", tmp_path / "no_shipped_model")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        CrystalPredictor.load()  # (with a shipped model, load() would fall back to it)
    model, _ = trained
    folder = model.save(tmp_path / "m")
    import skops.io

    monkeypatch.setattr(skops.io, "get_untrusted_types", lambda file: ["builtins.eval"])
    with pytest.raises(ValueError, match="refusing"):
        CrystalPredictor.load(folder)


def test_the_vote_product_keeps_what_difference_aggregation_drops():
    from uedsteer.surrogates.crystal.votes import product_aggregate

    # 48 trees, three groups: "A" is every zone's close runner-up; "B" wins one zone by far
    # and gets no vote from the other two, which rule it out
    votes = np.array([[20, 28, 0], [26, 0, 22], [25, 0, 23]])
    assert difference_aggregate(votes, ["A", "B", "C"])[0] == "B"  # 8/48 beats 4/48 + 2/48
    label, confidence, weights = product_aggregate(votes, ["A", "B", "C"])
    assert label == "A" and confidence == pytest.approx(weights["A"])
    assert sum(weights.values()) == pytest.approx(1.0) and weights["B"] < 0.01
    # one pattern: its own winner; equal votes: equal weights
    assert product_aggregate(votes[:1], ["A", "B", "C"])[0] == "B"
    _, confidence, _ = product_aggregate(np.array([[10, 10]]), ["A", "B"])
    assert confidence == pytest.approx(0.5)
