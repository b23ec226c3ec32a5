"""The featurizer: settings validated at construction, the predictor built and loaded through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_crystal_predictor import SMALL, make_dataset

from uedsteer.surrogates.crystal.features import N_FEATURES, radial_basis
from uedsteer.surrogates.crystal.featurizer import CrystalFeaturizer
from uedsteer.surrogates.crystal.predictor import CrystalPredictor


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature_set": "polar"}, "feature_set='polar' is not known; allowed: ('radial', "),
        ({"q_range": (1.3, 0.16)}, "q_range=(1.3, 0.16) is not allowed; use None or (q_min, "),
        ({"q_range": "wide"}, "q_range='wide' is not allowed"),
        ({"orient": "yes"}, "orient='yes' is not allowed; use True or False"),
        ({"zone_features": ["g1", "g7"]}, "zone_features=['g1', 'g7'] names ['g7'] that are not"),
        ({"n_radial": 0}, "n_radial=0 is not allowed; use an integer >= 1"),
        ({"p_max": 2.5}, "p_max=2.5 is not allowed; use an integer >= 0"),
        ({"dq": -0.05}, "dq=-0.05 is not allowed; use a finite step > 0"),
        ({"min_spots": 1}, "min_spots=1 is not allowed; use an integer >= 2"),
    ],
)
def test_a_bad_setting_is_refused_at_construction_in_one_line(kwargs, message):
    with pytest.raises(ValueError) as err:
        CrystalFeaturizer(**kwargs)
    text = str(err.value)
    assert text.startswith(message) and "\n" not in text


def test_featurizer_matches_the_radial_basis_and_sizes_its_output():
    rng = np.random.default_rng(2)
    lists, _, _, _ = make_dataset(rng, 3)
    radial = CrystalFeaturizer(orient=False)
    x, valid = radial.transform(lists)
    np.testing.assert_array_equal(x, radial_basis(lists, on_invalid="nan")[0])
    assert valid.all() and radial.n_features == N_FEATURES
    both = CrystalFeaturizer("radial+zone", q_range=(0.16, 1.3))
    assert both.transform(lists)[0].shape == (len(lists), both.n_features)
    assert CrystalFeaturizer("zone", zone_features=["g1", "q_min"]).n_features == 2


def test_predictor_takes_the_featurizer_and_refuses_a_second_set_of_settings():
    featurizer = CrystalFeaturizer("zone", q_range=(0.16, 1.3))
    model = CrystalPredictor(system_params=SMALL, featurizer=featurizer)
    assert model.featurizer is featurizer
    assert model.feature_set == "zone" and model.q_range == (0.16, 1.3)
    assert model.lattice_target == "scaled"  # the zone features measure a length scale
    with pytest.raises(AttributeError):
        model.q_range = (0.0, 2.0)  # settings are fixed at construction
    with pytest.raises(ValueError, match="give those settings to the CrystalFeaturizer only"):
        CrystalPredictor(featurizer=featurizer, orient=False)
    with pytest.raises(ValueError, match="featurizer='zone' is not allowed"):
        CrystalPredictor(featurizer="zone")
    # the shorthand builds the same featurizer
    short = CrystalPredictor(features="zone", q_range=(0.16, 1.3))
    assert short.featurizer.settings() == featurizer.settings()


def test_load_builds_the_featurizer_through_its_validation(tmp_path):
    rng = np.random.default_rng(4)
    lists, systems, groups, lattices = make_dataset(rng, 8)
    model = CrystalPredictor(
        system_params=SMALL, space_group_params=SMALL, lattice_params=SMALL, n_jobs=1
    )
    x, valid = model.features(lists)
    folder = model.fit(x[valid], systems[valid], groups[valid], lattices[valid], progress=False)
    folder = model.save(tmp_path / "m")
    loaded = CrystalPredictor.load(folder)
    assert loaded.featurizer.settings() == model.featurizer.settings()
    meta = json.loads((folder / "metadata.json").read_text())
    meta["features"]["n_radial"] = 0
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="n_radial=0 is not allowed"):
        CrystalPredictor.load(folder)
