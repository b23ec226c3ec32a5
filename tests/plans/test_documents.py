"""The run's document layout: a run written by the campaign plan holds the streams, readouts
and start-document keys that :mod:`uedsteer.plans.documents` names, and the reader
(:func:`uedsteer.plans.resume.resume_campaign`) gets every shot back through them, a failed one
included."""

import math

import numpy as np
import pytest

from uedsteer.controller.config import CampaignConfig
from uedsteer.plans import documents as doc
from uedsteer.plans.catalog import local_catalog, read_frames
from uedsteer.plans.resume import resume_campaign, stream_table
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.contracts import SETTING_NAMES
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A three-shot simulated campaign whose second shot is a detector fault."""
    cat = local_catalog(tmp_path_factory.mktemp("documents") / "cat")
    bl = SimulatedBeamline(ResponseParams(), seed=0)
    bl.detector.inject_fault("raise", after=4)  # three reference frames, shot 0, then shot 1
    record = simulate_campaign(
        CampaignConfig(budget=3), scorer=FrameScorer.pretrained(), catalog=cat, beamline=bl
    )
    return cat, cat.values().last(), record


def test_the_run_holds_the_layout(written):
    _, run, record = written
    start = run.metadata["start"]
    assert start[doc.PLAN_NAME_KEY] == doc.CAMPAIGN_PLAN
    assert start[doc.RESUMED_FROM_KEY] is None
    assert CampaignConfig.model_validate(start[doc.CONFIG_KEY]).budget == 3
    assert doc.frame_key(start) == "det_image" and start[doc.DETECTORS_KEY] == ["det"]
    assert {doc.REFERENCE, doc.PROPOSALS, doc.SHOTS, doc.FAILURES} <= set(run)
    assert read_frames(run, stream=doc.REFERENCE).shape == (3, 261, 261)
    assert read_frames(run).shape == (2, 261, 261)  # the failed shot has no frame

    shots = stream_table(run, doc.SHOTS, doc.readout_prefix(doc.SHOT_READOUT))
    assert set(doc.SHOT_COUNTS + doc.SHOT_LABELS + SETTING_NAMES) <= set(shots)
    assert shots["shot"].tolist() == [0, 2]
    failed = stream_table(run, doc.FAILURES, doc.readout_prefix(doc.SHOT_READOUT))
    assert failed["shot"].tolist() == [1] and failed["status"].tolist() == ["failed"]
    assert "detector fault on trigger" in str(failed["error"][0])
    assert [t.status for t in record.trials] == ["ok", "failed", "ok"]

    proposals = stream_table(run, doc.PROPOSALS, doc.readout_prefix(doc.PROPOSAL_READOUT))
    fields = doc.PROPOSAL_COUNTS + doc.PROPOSAL_FIGURES + doc.PROPOSAL_LABELS + doc.PROPOSAL_JSON
    assert set(fields) <= set(proposals) and set(doc.PROPOSAL_FIELDS) <= set(fields)
    assert proposals["shot"].tolist() == [0, 1, 2]
    key = doc.readout_key(doc.SHOT_READOUT, "shot")
    assert np.asarray(run[doc.SHOTS][key].read()).tolist() == [0, 2]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_the_reader_gets_every_shot_back(written):
    cat, run, record = written
    camp = resume_campaign(cat, run.metadata["start"]["uid"])
    assert camp.resumed_from == run.metadata["start"]["uid"]
    assert len(camp.record) == len(record)
    for got, shot in zip(camp.record.trials, record.trials, strict=True):
        assert (got.index, got.spot, got.status, got.action) == (
            shot.index,
            shot.spot,
            shot.status,
            shot.action,
        )
        assert got.settings == shot.settings and got.error == shot.error
        assert set(got.scores) == set(shot.scores)
        assert all(_same(got.scores[k], shot.scores[k]) for k in shot.scores)
        assert got.proposal.keys() == doc.PROPOSAL_FIELDS.keys()
        assert got.proposal["mode"] == shot.proposal["mode"]
    assert camp.reference is not None and camp.reference.shape == (261, 261)
