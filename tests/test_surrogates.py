"""Models learn, the scorer's outputs are well-formed, bad frames are flagged."""

import numpy as np
import pytest
import torch

from uedsteer.sim_devices.frames import generate_frames
from uedsteer.sim_devices.materials import MOTE2
from uedsteer.surrogates.cnn import SeedWideResNet, UEDNet
from uedsteer.surrogates.preprocess import cnn_input, vae_input
from uedsteer.surrogates.scorer import FrameScorer
from uedsteer.surrogates.training import fine_tune, train_classifier, train_vae
from uedsteer.surrogates.vae import ConvVAE, LatentLine, vae_loss

SMALL = {"base_size": (16, 10)}
CLASSES = MOTE2.class_names


@pytest.fixture(scope="module")
def tiny():
    refs, _ = generate_frames("ref_2H", 3, seed=50, **SMALL)
    frames, labels = [], []
    for k, label in enumerate(CLASSES):
        f, _ = generate_frames(label, 4, seed=51, **SMALL)
        frames.append(f)
        labels += [k] * 4
    return np.concatenate(frames), torch.tensor(labels), refs


def test_input_transforms(tiny):
    frames, _, refs = tiny
    x = cnn_input(frames[:5], refs)
    assert x.shape == (5, 2, 87, 87) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    v = vae_input(frames[:5])
    assert v.shape == (5, 1, 64, 64) and 0 <= float(v.min()) and float(v.max()) <= 1


def test_networks_shapes():
    assert UEDNet()(torch.zeros(3, 2, 87, 87)).shape == (3, 8)
    assert SeedWideResNet()(torch.zeros(1, 2, 261, 261)).shape == (1, 8)
    recon, mu, logvar = ConvVAE(4)(torch.rand(2, 1, 64, 64))
    assert recon.shape == (2, 1, 64, 64) and mu.shape == (2, 4)


def test_classifier_loss_falls(tiny):
    frames, y, refs = tiny
    x = cnn_input(frames, refs)
    model = UEDNet()
    loss_fn = torch.nn.CrossEntropyLoss()
    model.eval()
    before = float(loss_fn(model(x), y))
    log = train_classifier(
        model,
        x,
        y,
        x,
        y,
        max_epochs=8,
        batch=8,
        patience=8,
        target_val_accuracy=1.01,
        progress=False,
    )
    after = float(loss_fn(model(x), y))
    assert after < 0.7 * before and log.epochs >= 1
    tuned = fine_tune(model, x[:8], y[:8], epochs=2)
    assert tuned is not model
    assert not torch.equal(next(tuned.parameters()), next(model.parameters()))


def test_vae_loss_falls(tiny):
    frames, _, _ = tiny
    x = vae_input(frames)
    vae = ConvVAE(4)
    torch.manual_seed(0)
    vae.eval()
    with torch.no_grad():
        r, mu, lv = vae(x)
        before = float(vae_loss(r, x, mu, lv, 1.0))
    train_vae(vae, x, epochs=6, batch=8, progress=False)
    with torch.no_grad():
        r, mu, lv = vae(x)
        after = float(vae_loss(r, x, mu, lv, 1.0))
    assert after < 0.8 * before


def test_latent_line_projection():
    line = LatentLine([0, 0, 0, 0], [2, 0, 0, 0])
    s, d = line.project(np.array([[1, 0, 0, 0], [1, 3, 0, 0], [-1, 0, 0, 0], [5, 0, 4, 0]]))
    assert np.allclose(s, [0.5, 0.5, 0.0, 1.0])
    assert np.allclose(d, [0.0, 3.0, 1.0, 5.0])
    with pytest.raises(ValueError, match="coincide"):
        LatentLine([1, 1], [1, 1])


@pytest.fixture(scope="module")
def untrained_scorer(tiny):
    _, _, refs = tiny
    torch.manual_seed(0)
    return FrameScorer(UEDNet(), ConvVAE(4), LatentLine([0] * 4, [1] * 4), refs)


def test_scorer_outputs_are_well_formed(untrained_scorer, tiny):
    frames, _, _ = tiny
    s = untrained_scorer.score(frames[:6])
    assert s.class_probs.shape == (6, 8) and np.allclose(s.class_probs.sum(1), 1)
    assert np.all((s.progress >= 0) & (s.progress <= 1)) and np.all(s.line_distance >= 0)
    assert np.all((s.damage_prob >= 0) & (s.damage_prob <= 1))
    assert np.all((s.frame_quality > 0) & (s.frame_quality <= 1)) and s.valid.all()
    again = untrained_scorer.score(frames[:6])
    assert np.array_equal(s.class_probs, again.class_probs), "deterministic in eval mode"
    single = untrained_scorer.score(frames[0])
    assert len(single) == 1 and np.allclose(single.class_probs[0], s.class_probs[0], atol=1e-5)
    row = s.row(0)
    assert row["class_name"] in CLASSES and len(row["latent"]) == 4


def test_scorer_flags_bad_frames(untrained_scorer, tiny):
    frames, _, _ = tiny
    bad = np.stack([frames[0], frames[1], frames[2], frames[3]]).copy()
    bad[0, 5, 5] = np.nan
    bad[1, 7, 7] = np.inf
    bad[2] = 0.0
    bad[3] = untrained_scorer.saturation
    s = untrained_scorer.score(np.concatenate([bad, frames[4:5]]))
    assert s.flags == ["nan", "inf", "zero", "saturated", ""]
    assert list(s.predicted_class[:4]) == [-1] * 4 and s.predicted_class[4] >= 0
    assert np.isnan(s.damage_prob[:4]).all() and not np.isnan(s.damage_prob[4])
    # the quick pre-check must not hide the 1 % rule: 1 % saturated passes, 2 % is flagged
    few, many = frames[5].copy(), frames[5].copy()
    few.flat[: few.size // 100] = untrained_scorer.saturation
    many.flat[: 2 * many.size // 100] = untrained_scorer.saturation
    assert untrained_scorer.score(np.stack([few, many])).flags == ["", "saturated"]
    with pytest.raises(ValueError, match="shape"):
        untrained_scorer.score(np.zeros((2, 100, 100)))
    with pytest.raises(ValueError, match=">= 3"):
        untrained_scorer.set_reference(frames[:2])


def test_fast_cnn_input_matches_difference_channels(tiny):
    from uedsteer.sim_devices.physics import difference_channels

    frames, _, refs = tiny
    fast = cnn_input(frames[:6], refs).numpy()
    slow = torch.nn.functional.avg_pool2d(
        torch.from_numpy(difference_channels(frames[:6], refs)), 3
    ).numpy()
    assert np.abs(fast - slow).max() < 1e-4
    with pytest.raises(ValueError, match="NaN"):
        cnn_input(np.full((1, 261, 261), np.nan, np.float32), refs)


def test_model_card_records_the_training_command(tmp_path):
    import json

    from uedsteer.surrogates.train_models import _card_path, note_command, update_card

    update_card(tmp_path, "cnn_syn", {"data": {"seeds": {"train": 101}}})
    update_card(tmp_path, "vae", {"data": {}})
    note_command(tmp_path, "cnn_syn", "uedsteer train cnn --data data --epochs 30")
    card = json.loads(_card_path(tmp_path).read_text())
    assert card["cnn_syn"]["command"] == "uedsteer train cnn --data data --epochs 30"
    assert card["cnn_syn"]["data"]["seeds"]["train"] == 101, "the rest of the section is kept"
    assert "command" not in card["vae"]


def test_finetune_base_is_recorded_with_its_hash_and_command(tmp_path):
    """CNNExp fine-tuned from another folder's CNNSyn says which one, by file hash."""
    import hashlib

    from uedsteer.surrogates.train_models import note_command, update_card
    from uedsteer.surrogates.transfer import _base_record, run_finetune

    base = tmp_path / "base"
    base.mkdir()
    torch.save(UEDNet().state_dict(), base / "cnn_syn.pt")
    update_card(base, "cnn_syn", {"data": {"seeds": {"train": 101}}})
    note_command(base, "cnn_syn", "uedsteer train cnn --data data")
    record = _base_record(base / "cnn_syn.pt", separate=True)
    assert record["sha256"] == hashlib.sha256((base / "cnn_syn.pt").read_bytes()).hexdigest()
    assert record["command"] == "uedsteer train cnn --data data"
    assert record["data"]["seeds"]["train"] == 101
    with pytest.raises(FileNotFoundError, match="base='.*empty'"):
        run_finetune(tmp_path, base=tmp_path / "empty")


def test_finetune_frames_follow_the_asked_pixel_sampling():
    """``uedsteer train finetune --oversample 3`` fine-tunes on pixel-integrated beamline
    frames: the same frame (same seed) integrated differs from the point-sampled one, and
    equals a generator frame integrated the same way."""
    from uedsteer.sim_devices.beamline import BEAMLINE_DETECTOR
    from uedsteer.sim_devices.frames import generate_frames
    from uedsteer.surrogates.transfer import beamline_frames

    point = beamline_frames("ref_2H", 1, seed=5)
    pixel = beamline_frames("ref_2H", 1, seed=5, oversample=3)
    assert not np.array_equal(point, pixel)
    same, _ = generate_frames(
        "ref_2H", 1, seed=5, detector=BEAMLINE_DETECTOR, noise_level=(0.1, 0.1), oversample=3
    )
    assert np.array_equal(pixel, same)


def test_frame_quality_box_filter_is_the_edge_corrected_3x3_mean(tiny):
    from uedsteer.surrogates.frame_input import _box3, frame_quality

    frames, _, _ = tiny
    f = torch.from_numpy(frames[:3])
    pooled = torch.nn.functional.avg_pool2d(
        f[:, None], 3, stride=1, padding=1, count_include_pad=False
    )[:, 0]
    assert torch.allclose(_box3(f), pooled, rtol=1e-5, atol=1e-6 * float(f.max()))
    rng = np.random.default_rng(0)
    clean = frames[:1].astype(np.float64)
    noisy = clean + rng.normal(0, 0.2 * clean.std(), clean.shape)
    assert frame_quality(noisy)[0] < frame_quality(clean)[0], "noise lowers the quality"


def test_cnn_input_frames_without_positive_total_are_finite(tiny):
    """A frame with no positive total has no normalized pattern: it reads as an empty frame
    (the difference is minus the reference), never NaN."""
    frames, _, refs = tiny
    x = cnn_input(np.stack([np.zeros_like(frames[0]), -np.abs(frames[0])]), refs)
    assert torch.isfinite(x).all() and torch.equal(x[0], x[1])
