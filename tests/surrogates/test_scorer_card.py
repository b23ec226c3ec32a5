"""The scorer takes its class names from its model card; scores carry them to the controller."""

import json
from importlib import resources

import numpy as np
import pytest
import torch

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.record import Step, failed_scores, score_row
from uedsteer.sim_devices.frames import generate_frames
from uedsteer.sim_devices.materials import MOTE2
from uedsteer.surrogates.cnn import UEDNet
from uedsteer.surrogates.scorer import FrameScorer, card_classes
from uedsteer.surrogates.scores import Scores
from uedsteer.surrogates.vae import ConvVAE, LatentLine

THREE = ["pristine", "hurt", "molten"]


@pytest.fixture(scope="module")
def refs():
    frames, _ = generate_frames("ref_2H", 3, seed=50, base_size=(16, 10))
    return frames


def _scorer(refs, meta):
    torch.manual_seed(0)
    n = len(meta.get("classes", MOTE2.classes))
    return FrameScorer(UEDNet(n), ConvVAE(4), LatentLine([0] * 4, [1] * 4), refs, meta=meta)


def test_shipped_card_records_the_mote2_classes():
    card = json.loads(
        resources.files("uedsteer.surrogates").joinpath("weights/scorer.json").read_text()
    )
    assert card["classes"] == list(MOTE2.class_names)
    assert card["damage_classes"] == list(MOTE2.damage_classes)
    assert card_classes(card) == card_classes({}) == (MOTE2.class_names, MOTE2.damage_classes)


def test_a_card_without_classes_reads_as_the_default_material(refs):
    scorer = _scorer(refs, {})
    assert scorer.classes == MOTE2.class_names and scorer.damage_classes == (1, 4, 7)
    s = scorer.score(refs[:2])
    assert s.classes == MOTE2.class_names and s.row(0)["classes"] == list(MOTE2.class_names)


def test_scores_name_the_cards_classes(refs, tmp_path):
    scorer = _scorer(refs, {"classes": THREE, "damage_classes": [1, 2]})
    s = scorer.score(refs[:2])
    assert s.class_probs.shape == (2, 3) and s.classes == tuple(THREE)
    assert np.allclose(s.damage_prob, s.class_probs[:, 1:].sum(1))
    assert set(s.class_names()) <= set(THREE)
    row = s.row(0)
    flat = score_row(row)
    assert [k for k in flat if k.startswith("p_")] == [f"p_{c}" for c in THREE]
    loaded = FrameScorer.load(scorer.save(tmp_path))
    assert loaded.classes == tuple(THREE) and loaded.damage_classes == (1, 2)
    assert np.array_equal(loaded.score(refs[:2]).class_probs, s.class_probs)


def test_the_campaign_learns_the_class_names_from_the_scores(refs):
    row = _scorer(refs, {"classes": THREE, "damage_classes": [1, 2]}).score(refs[:1]).row(0)
    camp = Campaign()
    assert camp.classes is None
    assert [k for k in failed_scores() if k.startswith("p_")] == [
        f"p_{c}" for c in MOTE2.class_names
    ]
    step = camp.next()
    camp.ingest(step, row)
    assert camp.classes == tuple(THREE)
    failed = camp.ingest(Step(dict(step.settings), step.spot), None, error="detector fault")
    assert [k for k in failed.scores if k.startswith("p_")] == [f"p_{c}" for c in THREE]


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"classes": ["a", "a"]}, "unique"),
        ({"classes": ["a", "b"], "damage_classes": [2]}, "damage_classes"),
    ],
)
def test_a_bad_card_is_refused(meta, match):
    with pytest.raises(ValueError, match=match):
        card_classes(meta)


def test_scores_refuse_probabilities_without_names():
    b = 1
    with pytest.raises(ValueError, match="classes"):
        Scores(
            class_probs=np.zeros((b, 3)),
            predicted_class=np.zeros(b, int),
            damage_prob=np.zeros(b),
            latent=np.zeros((b, 4)),
            line_distance=np.zeros(b),
            progress=np.zeros(b),
            recon_error=np.zeros(b),
            frame_quality=np.zeros(b),
            heating=np.zeros(b),
            valid=np.ones(b, bool),
            flags=[""],
            classes=("a", "b"),
        )
