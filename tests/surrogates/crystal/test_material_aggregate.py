"""The learned aggregate over a material's patterns: what its features measure on real
crystals, that it learns what only the set of patterns shows, and that it saves and loads."""

from __future__ import annotations

import numpy as np
import pytest

from uedsteer.surrogates.crystal.featurizer import CrystalFeaturizer
from uedsteer.surrogates.crystal.material_aggregate import (
    MATERIAL_FEATURE_NAMES,
    material_features,
    zone_columns,
)
from uedsteer.surrogates.crystal.predictor import CrystalPredictor
from uedsteer.surrogates.crystal.reference_structures import (
    REFERENCE_STRUCTURES,
    reference_bragg_lists,
)
from uedsteer.surrogates.crystal.zone import ZONE_FEATURE_NAMES

ZONE = CrystalFeaturizer("zone", orient=True)
COLUMNS = zone_columns(ZONE.zone_features, 0)


def _features_of(name: str) -> dict[str, float]:
    structure = next(s for s in REFERENCE_STRUCTURES if s.name == name)
    x, valid = ZONE.transform(reference_bragg_lists(structure))
    votes = np.full((int(valid.sum()), 6), 1.0)
    return dict(
        zip(MATERIAL_FEATURE_NAMES, material_features(x[valid], votes, COLUMNS), strict=True)
    )


@pytest.fixture(scope="module")
def textbook() -> dict[str, dict[str, float]]:
    return {name: _features_of(name) for name in ("Au (fcc)", "TiO2 (rutile)", "Mg (hcp)")}


def test_material_features_read_the_lattice_of_real_crystals(textbook):
    gold, rutile, magnesium = textbook["Au (fcc)"], textbook["TiO2 (rutile)"], textbook["Mg (hcp)"]
    # a cubic crystal shows a square net ([001]) and a hexagonal one ([111]) among its zone
    # axes; a tetragonal one never a hexagonal net, a hexagonal one never a square net
    assert gold["any_square"] == 1 and gold["any_hexagonal"] == 1
    assert rutile["any_square"] == 1 and rutile["any_hexagonal"] == 0
    assert magnesium["any_hexagonal"] == 1 and magnesium["any_square"] == 0
    # gold: |g|² of every zone's cell are (h² + k² + l²)/a² with the first ring N = 3 (fcc)
    assert gold["cubic_index_3_0.02"] == 1.0
    assert gold["hexagonal_over_square_g1"] == pytest.approx(np.sqrt(2), abs=0.01)  # 220 / 200
    assert rutile["cubic_index_3_0.02"] < 0.8
    # fcc rings at Q / Q_min = 4/3 (200) and 8/3 (220)
    assert gold["powder_1.33"] > 0.05 and gold["powder_2.67"] > 0.05
    # how far the nearest cell is from each net, in tolerances: gold has both exactly
    assert gold["misfit_square_least"] == pytest.approx(0, abs=1e-6)
    assert gold["misfit_hexagonal_least"] == pytest.approx(0, abs=1e-6)
    assert rutile["misfit_hexagonal_least"] > 2 and magnesium["misfit_square_least"] > 2
    assert gold["cubic_relative_3_0.005"] == 1.0 and rutile["cubic_relative_3_0.01"] < 0.8


def test_material_features_of_measured_gold_still_read_cubic():
    """Spots moved by the 4D-STEM sample's 0.004 1/Å error: the refined cells keep gold's
    square and hexagonal nets within a tolerance, and its cell lengths on one fcc scale."""
    from uedsteer.surrogates.crystal.bragg_lists import jitter_positions

    structure = next(s for s in REFERENCE_STRUCTURES if s.name == "Au (fcc)")
    x, valid = ZONE.transform(jitter_positions(reference_bragg_lists(structure), 0.004, 3))
    votes = np.full((int(valid.sum()), 6), 1.0)
    f = dict(zip(MATERIAL_FEATURE_NAMES, material_features(x[valid], votes, COLUMNS), strict=True))
    assert f["misfit_square_least"] < 0.5 and f["misfit_hexagonal_least"] < 0.5
    assert f["any_square"] == 1 and f["any_hexagonal"] == 1
    assert f["cubic_relative_3_0.01"] > 0.9


def test_material_features_ignore_the_order_of_the_patterns_and_the_vote_scale():
    rng = np.random.default_rng(3)
    structure = REFERENCE_STRUCTURES[0]
    x, valid = ZONE.transform(reference_bragg_lists(structure))
    x = x[valid]
    votes = rng.uniform(0, 1, (len(x), 6))
    order = rng.permutation(len(x))
    base = material_features(x, votes, COLUMNS)
    np.testing.assert_allclose(material_features(x[order], votes[order] * 80, COLUMNS), base)
    assert base.shape == (len(MATERIAL_FEATURE_NAMES),)
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        material_features(x, votes[:, :5], COLUMNS)
    assert zone_columns(ZONE_FEATURE_NAMES[:20], 0) is None  # the UED model's 20 features


# ----------------------------------------------------------- what only the set shows


def _net_pattern(rng: np.random.Generator, net: str, a: float) -> np.ndarray:
    """A 2-D reciprocal point lattice, randomly rotated, with a central beam."""
    b2 = np.array([0.0, a]) if net == "square" else np.array([a / 2, a * np.sqrt(3) / 2])
    h, k = np.meshgrid(np.arange(-8, 9), np.arange(-8, 9))
    q = h.reshape(-1, 1) * np.array([a, 0.0]) + k.reshape(-1, 1) * b2
    t = rng.uniform(0, 2 * np.pi)
    q = q @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).T
    q = q[np.hypot(*q.T) < 1.3]
    intensity = np.exp(-(np.hypot(*q.T) ** 2) / 0.4) * rng.uniform(0.3, 1.0, len(q))
    intensity[np.hypot(*q.T) < 0.01] = 20.0
    return np.column_stack([q, intensity])


NETS_OF = {"cubic": ("square", "hexagonal"), "tetragonal": ("square",), "hexagonal": ("hexagonal",)}
"""Toy materials: one zone shows a square or a hexagonal net, either of which two systems
share; only a material's set of zones tells its system."""


def _materials(rng: np.random.Generator, per_system: int, patterns: int, first: int = 0):
    lists, systems, material = [], [], []
    for s, system in enumerate(NETS_OF):
        for m in range(per_system):
            a = rng.uniform(0.25, 0.45)
            nets = list(NETS_OF[system]) + [
                str(rng.choice(NETS_OF[system])) for _ in range(patterns - len(NETS_OF[system]))
            ]
            lists += [_net_pattern(rng, net, a) for net in nets]
            systems += [system] * patterns
            material += [first + s * per_system + m] * patterns
    return lists, np.array(systems), np.array(material)


@pytest.fixture(scope="module")
def learned():
    rng = np.random.default_rng(11)
    lists, systems, material = _materials(rng, 40, 6)
    model = CrystalPredictor(
        system_estimator="boosting",
        system_params={"max_iter": 40},
        space_group_params={"n_estimators": 5},
        lattice_params={"n_estimators": 5},
        n_jobs=1,
        features="zone",
        aggregation="learned",
    )
    x, valid = model.features(lists)
    assert valid.all()
    group = {"cubic": 225, "tetragonal": 123, "hexagonal": 191}
    groups = np.array([group[s] for s in systems])
    model.fit(x, systems, groups, np.ones((len(x), 3)) * 4.0, progress=False, material=material)
    return model, _materials(rng, 12, 6, first=1000)


def test_the_learned_aggregate_reads_what_no_single_pattern_shows(learned):
    model, (lists, systems, material) = learned
    learned_right, difference_right = [], []
    for m in np.unique(material):
        rows = np.flatnonzero(material == m)
        patterns = [lists[i] for i in rows]
        agg = model.predict_aggregate(patterns)
        assert agg.aggregation == "learned" and sum(agg.system_weights.values()) == pytest.approx(1)
        learned_right.append(agg.crystal_system == systems[rows[0]])
        paper = model.predict_aggregate(patterns, aggregation="difference")
        assert paper.aggregation == "difference"
        difference_right.append(paper.crystal_system == systems[rows[0]])
    one = model.predict_aggregate(lists[:1])  # a set of one is read by its own vote
    assert (
        one.aggregation == "difference"
        and one.crystal_system == model.predict(lists[:1]).crystal_system[0]
    )
    # a square net is cubic or tetragonal, a hexagonal one cubic or hexagonal: the votes of
    # single patterns cannot name a cubic material, the set of its nets can
    assert np.mean(learned_right) >= 0.9
    assert np.mean(difference_right) <= 0.8


def test_a_learned_aggregate_saves_and_loads(learned, tmp_path):
    model, (lists, _, _) = learned
    loaded = CrystalPredictor.load(model.save(tmp_path / "crystal"))
    assert loaded.aggregation == "learned"
    assert loaded.metadata_["hyperparameters"]["material_features"] == list(MATERIAL_FEATURE_NAMES)
    for how in (None, "difference"):
        before = model.predict_aggregate(lists[:6], aggregation=how)
        after = loaded.predict_aggregate(lists[:6], aggregation=how)
        assert (after.crystal_system, after.system_weights) == (
            before.crystal_system,
            before.system_weights,
        )


def test_learned_aggregation_refuses_what_it_cannot_do(learned):
    model, (lists, systems, _) = learned
    with pytest.raises(ValueError, match="aggregation='learned' needs the zone features"):
        CrystalPredictor(features="radial", aggregation="learned")
    with pytest.raises(ValueError, match="aggregation='mean' is not known"):
        CrystalPredictor(aggregation="mean")
    x, _ = model.features(lists[:4])
    fresh = CrystalPredictor(
        features="zone", aggregation="learned", system_params={"n_estimators": 2}
    )
    with pytest.raises(ValueError, match="needs material= with one material index per pattern"):
        fresh.fit(x, systems[:4], [225] * 4, np.ones((4, 3)), progress=False)
    with pytest.raises(ValueError, match="aggregation='mean' is not known"):
        model.predict_aggregate(lists[:4], aggregation="mean")
    paper = CrystalPredictor(features="zone", system_params={"n_estimators": 2})
    paper.fit(x, systems[:4], [225] * 4, np.ones((4, 3)), progress=False)
    with pytest.raises(ValueError, match="needs a model trained with it"):
        paper.predict_aggregate(features=x, aggregation="learned")
