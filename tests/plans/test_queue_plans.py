"""The queue plans and the profile's namespace, in this process (no queueserver running).

The end-to-end tests through a real RE Manager are in ``test_queueserver.py``; here the same
plans run in a plain RunEngine, and the queueserver's own plan validation checks their
annotations.
"""

from __future__ import annotations

import pytest

from uedsteer.plans import documents as doc
from uedsteer.plans.queue_plans import DEVICE_ROLES, DeviceBeamline, load_config, queue_plans

pytestmark = pytest.mark.filterwarnings("ignore")

FAST = {"n_candidates": 64}


def _devices(bl) -> dict:
    return dict(zip(DEVICE_ROLES, (bl.detector, bl.pump, bl.gun, bl.delay, bl.stage), strict=True))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from bluesky import RunEngine

    from uedsteer.plans.catalog import local_catalog, subscribe
    from uedsteer.sim_devices.beamline import SimulatedBeamline
    from uedsteer.surrogates.scorer import FrameScorer

    db = local_catalog(tmp_path_factory.mktemp("cat"))
    RE = RunEngine({}, context_managers=[])
    subscribe(RE, db)
    bl = SimulatedBeamline(seed=0)
    plans = queue_plans(_devices(bl), {"pretrained": FrameScorer.pretrained()}, db)
    return RE, db, bl, plans


def test_load_config_takes_a_mapping_a_yaml_path_or_nothing(tmp_path):
    assert load_config(None).budget == 40
    assert load_config({"budget": 7}).budget == 7
    assert load_config({"budget": 7}, budget=3).budget == 3
    path = tmp_path / "c.yaml"
    path.write_text("budget: 9\ndamage_bound: 0.1\n")
    cfg = load_config(str(path))
    assert (cfg.budget, cfg.damage_bound) == (9, 0.1)
    cases = {
        "shots": ({"shots": 3}, "config: shots: Extra inputs are not permitted"),
        "budget": ({}, "config: budget: Input should be greater than or equal to 1"),
        "file": ("/nowhere/c.yaml", "config '/nowhere/c.yaml': no such file on the RE Manager"),
        "type": (3, "config is a int: give a mapping of fields, a YAML path or nothing"),
    }
    for case, (config, expected) in cases.items():
        with pytest.raises(ValueError) as err:
            load_config(config, budget=0 if case == "budget" else None)
        assert expected in str(err.value), (case, str(err.value))
        assert "\n" not in str(err.value)
    path.write_text("budget: [1\n")
    with pytest.raises(ValueError, match=r"^config '.*c.yaml': while parsing"):
        load_config(str(path))


def test_the_named_devices_make_a_beamline_the_plans_accept():
    from uedsteer.plans.protocols import check_beamline
    from uedsteer.sim_devices.beamline import SimulatedBeamline

    bl = SimulatedBeamline(seed=0)
    named = DeviceBeamline(**_devices(bl))
    check_beamline(named)
    assert named.settings == bl.settings and named.motors == bl.motors
    assert named.shutter is bl.shutter and named.spot is bl.spot
    with pytest.raises(ValueError, match="no device for gun, delay"):
        queue_plans({"detector": bl.detector, "pump": bl.pump, "stage": bl.stage}, {"s": 1}, None)
    with pytest.raises(ValueError, match="at least one scorer"):
        queue_plans(_devices(bl), {}, None)


def test_the_queueserver_reads_the_annotations(setup):
    """The queueserver's own description and validation of the plans (what the RE Manager
    does with them): limits and names shown, bad values refused."""
    from bluesky_queueserver.manager.profile_ops import (
        existing_plans_and_devices_from_nspace,
        validate_plan,
    )

    RE, db, bl, plans = setup
    nspace = {**plans, **{d.name: d for d in _devices(bl).values()}}
    existing_plans, existing_devices, *_ = existing_plans_and_devices_from_nspace(nspace=nspace)
    params = {p["name"]: p for p in existing_plans["uedsteer_campaign"]["parameters"]}
    assert (params["budget"]["min"], params["budget"]["max"]) == ("1", "10000")
    assert params["stage"]["default"] == "'stage'"
    assert "Shot budget" in params["budget"]["description"]
    allowed = {"allowed_plans": existing_plans, "allowed_devices": existing_devices}
    good = {"name": "uedsteer_campaign", "kwargs": {"config": {"budget": 3}, "detector": "det"}}
    ok, msg = validate_plan(good, **allowed)
    assert ok, msg
    for kwargs, expected in (
        ({"budget": 0}, "out of range"),
        ({"detector": "pump"}, "detector"),
        ({"scorer": "other"}, "scorer"),
    ):
        item = {"name": "uedsteer_campaign", "kwargs": kwargs}
        ok, msg = validate_plan(item, **allowed)
        assert not ok and expected in msg, (kwargs, msg)


def test_the_plans_run_a_campaign_and_resume_it(setup):
    """Called with the devices themselves (the queueserver passes them so), the campaign plan
    runs and closes the shutter; the resume plan continues it from the catalog, refuses a
    finished campaign, and device names given directly are refused."""
    RE, db, bl, plans = setup
    devices = _devices(bl)
    (uid,) = RE(plans["uedsteer_campaign"](config=FAST, budget=2, md={"who": "test"}, **devices))
    run = db[uid]
    assert run.metadata["start"]["who"] == "test"
    assert run.metadata["start"]["sample"] == "MoTe2 monolayer"
    assert bl.shutter.get() == "closed"
    with pytest.raises(ValueError, match="nothing to do, no run opened: .*budget"):
        RE(plans["uedsteer_resume"](uid=uid, **devices))
    (again,) = RE(plans["uedsteer_resume"](uid=uid, budget=3, **devices))
    start = db[again].metadata["start"]
    assert start[doc.RESUMED_FROM_KEY] == uid and start["shots_before"] == 2
    assert bl.shutter.get() == "closed"
    with pytest.raises(ValueError, match="already continued by run"):
        RE(plans["uedsteer_resume"](uid=uid, budget=4, **devices))
    with pytest.raises(ValueError, match="detector='det': give the device, not its name"):
        RE(plans["uedsteer_campaign"](detector="det"))
    with pytest.raises(ValueError, match="scorer='mine' is not known; allowed: pretrained"):
        RE(plans["uedsteer_campaign"](scorer="mine", **devices))


def test_the_profile_beamline_comes_from_the_environment():
    from uedsteer.plans.qserver_profile.namespace import make_beamline

    with pytest.raises(ValueError, match="UEDSTEER_EPICS_PREFIX='U:' and UEDSTEER_EPICS_PV_MAP"):
        make_beamline({"UEDSTEER_EPICS_PREFIX": "U:", "UEDSTEER_EPICS_PV_MAP": "m.yaml"})
    with pytest.raises(ValueError, match="UEDSTEER_SIM_SEED='x' is not a whole number"):
        make_beamline({"UEDSTEER_SIM_SEED": "x"})
    assert make_beamline({"UEDSTEER_SIM_SEED": "3"}).seed == 3
    with pytest.raises(FileNotFoundError):
        make_beamline({"UEDSTEER_EPICS_PV_MAP": "/nowhere/pvs.yaml"})
