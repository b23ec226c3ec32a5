"""The shipped weights load safely and classify fresh frames of clear classes."""

import numpy as np
import pytest
import torch

from uedsteer.sim_devices.frames import generate_frames
from uedsteer.surrogates.scorer import FrameScorer

CLEAR = {
    "ref_2H": {},
    "vacancy_2H": {"vacancy_fraction": (0.15, 0.2)},
    "vacancy_1Tp": {"vacancy_fraction": (0.15, 0.2)},
    "deform_2H": {"strain_max_normal": 0.08},
    "degraded": {},
}


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained("syn")


def test_weights_are_plain_tensors():
    from importlib import resources

    root = resources.files("uedsteer.surrogates") / "weights"
    total = 0
    for name in ("cnn_syn.pt", "cnn_exp.pt", "vae.pt"):
        path = root / name
        state = torch.load(str(path), weights_only=True)  # refuses pickled code
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        total += path.stat().st_size
    assert total < 30e6
    assert (root / "model_card.json").is_file()


@pytest.mark.parametrize("label", list(CLEAR))
def test_pretrained_classifies_clear_frames(scorer, label):
    frames, _ = generate_frames(label, 4, seed=4242, noise_level=(0.0, 0.2), **CLEAR[label])
    scores = scorer.score(frames)
    assert scores.class_names() == [label] * 4
    damage = label in ("vacancy_2H", "vacancy_1Tp", "degraded")
    assert np.all(scores.damage_prob > 0.5) if damage else np.all(scores.damage_prob < 0.5)


def test_progress_follows_the_transformation(scorer):
    frames, params = generate_frames(
        "interpolated", 5, seed=4243, x=[0, 0.25, 0.5, 0.75, 1], noise_level=(0.0, 0.1)
    )
    s = scorer.score(frames)
    assert np.all(np.diff(s.progress) > -0.05) and s.progress[-1] - s.progress[0] > 0.6


def test_scores_do_not_depend_on_torch_default_dtype(scorer):
    # BoTorch users and Xopt (on import of its Bayesian generators) set float64 as torch's
    # default dtype; the float32 networks must score the same frames the same way.
    intact, _ = generate_frames("ref_2H", 2, seed=4244, noise_level=(0.0, 0.1))
    hurt, _ = generate_frames("vacancy_1Tp", 2, seed=4245, noise_level=(0.0, 0.1))
    frames = np.concatenate([intact, hurt])
    before = scorer.score(frames)
    assert np.ptp(before.damage_prob) > 0.5 and np.ptp(before.progress) > 0.5  # not all ~0
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        after = scorer.score(frames)
    finally:
        torch.set_default_dtype(old)
    for field in ("class_probs", "damage_prob", "progress", "line_distance", "frame_quality"):
        np.testing.assert_allclose(getattr(after, field), getattr(before, field), atol=1e-6)


def test_both_variants_load():
    exp = FrameScorer.pretrained("exp")
    syn = FrameScorer.pretrained("syn")
    assert not torch.equal(next(exp.cnn.parameters()), next(syn.cnn.parameters()))
    with pytest.raises(ValueError, match="variant="):
        FrameScorer.pretrained("fancy")


def test_fast_layouts_keep_the_numbers_and_the_saved_weights(scorer, tmp_path):
    """The decoder runs channels_last for speed: same reconstruction bit for bit as the
    standard layout, and a saved scorer's vae.pt is byte for byte the shipped file."""
    from importlib import resources

    x = torch.rand(3, 1, 64, 64)
    plain = type(scorer.vae)(latent_dim=scorer.vae.latent_dim)
    plain.load_state_dict(scorer.vae.state_dict())
    plain.eval()
    with torch.inference_mode():
        mu, _ = plain.encode(x)
        assert torch.equal(scorer.vae.decode(mu), plain.decode(mu))
    shipped = resources.files("uedsteer.surrogates") / "weights" / "vae.pt"
    saved = scorer.save(tmp_path) / "vae.pt"
    assert saved.read_bytes() == shipped.read_bytes()


def test_campaign_scorer_sees_vacancies_on_partially_transformed_frames():
    # A campaign climbs through 30-50 % transformed frames at the resonant band; before the
    # mixed fine-tuning stage a spot with vacancy 0.05 (a damage event) read intact there.
    from uedsteer.sim_devices.beamline import FrameRenderer
    from uedsteer.sim_devices.response import ShotState, site_vacancy_state

    renderer, rng = FrameRenderer(), np.random.default_rng(31)
    scorer = FrameScorer.pretrained()  # the campaign's variant
    pristine = ShotState(0.0, 0.0, 0.0, False, 0.06, 0.0)
    scorer.set_reference(np.stack([renderer.render(pristine, 20.0, rng) for _ in range(3)]))

    def damage(x: float, vacancy: float) -> np.ndarray:
        state = site_vacancy_state(x, vacancy, 0.075)
        frames = np.stack([renderer.render(state, 20.0, rng) for _ in range(4)])
        return scorer.score(frames).damage_prob

    for x in (0.3, 0.5):
        assert np.all(damage(x, 0.0) < 0.2), x  # intact mixed frames are no damage
        assert np.median(damage(x, 0.04)) > 0.8, x  # a hurt spot is, before it is an event


def test_mixed_frames_are_labelled_by_fraction_and_hurt():
    from uedsteer.sim_devices.materials import MOTE2
    from uedsteer.surrogates.transfer import mixed_frames

    x, y = mixed_frames(6, np.random.default_rng(3), np.ones((261, 261)) / 261**2)
    assert x.shape == (6, 2, 87, 87)
    names = [MOTE2.class_names[k] for k in y]
    assert all(n.startswith("phonon_") for n in names[0::2])  # even: intact
    assert all(n.startswith("vacancy_") for n in names[1::2])  # odd: hurt spot


def test_mixed_stage_refuses_to_stack_on_itself(tmp_path):
    # The shipped CNNExp already went through the stage; a second run would lose its record.
    import shutil
    from importlib import resources

    from uedsteer.surrogates.transfer import run_mixed_finetune

    shutil.copytree(str(resources.files("uedsteer.surrogates") / "weights"), tmp_path / "w")
    before = (tmp_path / "w" / "cnn_exp.pt").read_bytes()
    with pytest.raises(ValueError, match="already went through the mixed stage"):
        run_mixed_finetune(tmp_path / "w")
    assert (tmp_path / "w" / "cnn_exp.pt").read_bytes() == before
