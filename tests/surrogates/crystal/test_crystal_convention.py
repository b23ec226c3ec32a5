"""One simulation convention: the simulators' defaults are the crystal stores' settings, a
trained model records them, and a list that visibly departs from them is warned about."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from ase.build import bulk

from uedsteer.sim_devices.crystals.settings import CrystalGenSettings
from uedsteer.sim_devices.physics.bragg import (
    SIMULATION_CONVENTION,
    dynamical_bragg,
    kinematic_bragg,
    structure_factor_for,
)
from uedsteer.surrogates.crystal.convention import (
    SimulationConventionWarning,
    convention_problems,
    simulation_record,
)

RECORD = {"k_max": 2.0, "min_intensity": 1e-5}


def test_the_simulators_defaults_are_the_crystal_stores_settings():
    store = CrystalGenSettings()
    for simulate in (dynamical_bragg, kinematic_bragg):
        defaults = {
            name: p.default
            for name, p in inspect.signature(simulate).parameters.items()
            if name in SIMULATION_CONVENTION
        }
        assert defaults == SIMULATION_CONVENTION, simulate.__name__
    for name, value in SIMULATION_CONVENTION.items():
        assert getattr(store, name) == value, name
    assert inspect.signature(structure_factor_for).parameters["thermal_sigma"].default == 0.08
    assert (
        SIMULATION_CONVENTION["sg_max"] == 0.02 and SIMULATION_CONVENTION["min_intensity"] == 1e-5
    )


def test_lists_of_the_convention_pass_and_departures_are_named():
    gold = bulk("Au", "fcc", a=4.08, cubic=True)
    ok = [kinematic_bragg(gold, uvw) for uvw in ([0, 0, 1], [0, 1, 1], [1, 1, 1])]
    assert convention_problems(ok, RECORD) == []
    # the old defaults: spots down to 1e-7 of the beam
    faint = [kinematic_bragg(gold, uvw, min_intensity=1e-7, sg_max=0.05) for uvw in ([0, 1, 1],)]
    (problem,) = convention_problems(faint, RECORD)
    assert "weaker than the model's min_intensity=1e-05" in problem
    assert "min_intensity=1e-05" in problem and "1 of 1 lists" in problem
    # beyond k_max, and no central beam (a list preprocessed already)
    # (sg_max 0.02 at 300 kV ends the zero-order zone at 1.43 1/Å: the Ewald sphere's curvature)
    wide = [kinematic_bragg(gold, [0, 0, 1], k_max=3.0, sg_max=0.2, thermal_sigma=0.0)]
    (problem,) = convention_problems(wide, RECORD)
    assert "beyond the model's k_max=2" in problem and "crop_bragg(list, 0, 2)" in problem
    headless = [ok[0][1:]]
    (problem,) = convention_problems(headless, RECORD)
    assert "no central beam" in problem and "(0, 0, I0)" in problem
    assert convention_problems(headless, RECORD, preprocess=False) == []
    # a record without bounds checks nothing it lacks
    assert convention_problems(faint + wide, {}) == []


def test_the_record_of_several_stores_keeps_the_loosest_bounds():
    specs = [
        {"n_materials": 10, "seed": 1, "settings": CrystalGenSettings().model_dump()},
        {
            "n_materials": 5,
            "seed": 2,
            "settings": CrystalGenSettings(k_max=2.5, min_intensity=1e-6).model_dump(),
        },
    ]
    record = simulation_record(specs)
    assert record["k_max"] == 2.5 and record["min_intensity"] == 1e-6
    assert [s["seed"] for s in record["stores"]] == [1, 2]
    assert record["stores"][0]["sg_max"] == 0.02 and record["stores"][0]["thermal_sigma"] == 0.08


def test_predict_warns_once_with_the_fix(shipped):
    gold = bulk("Au", "fcc", a=4.08, cubic=True)
    assert shipped.simulation_["min_intensity"] == 1e-5 and shipped.simulation_["k_max"] == 2.0
    good = kinematic_bragg(gold, [0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shipped.predict([good])  # the convention: no warning
    faint = kinematic_bragg(gold, [0, 1, 1], min_intensity=1e-8, sg_max=0.06)
    with pytest.warns(SimulationConventionWarning, match="min_intensity=1e-05") as caught:
        shipped.predict_aggregate(iter([faint, good]))
    assert len(caught) == 1
    with pytest.warns(SimulationConventionWarning):
        x, _ = shipped.features([faint])  # the lists' features: the same check
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shipped.predict(features=x)  # features alone: nothing to tell


def test_a_list_as_one_array_is_checked_too(shipped):
    gold = bulk("Au", "fcc", a=4.08, cubic=True)
    headless = kinematic_bragg(gold, [0, 0, 1])[1:]
    with pytest.warns(SimulationConventionWarning, match="no central beam"):
        shipped.predict(np.asarray(headless))
