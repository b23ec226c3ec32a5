"""FrameScorer at its boundaries: rejected references change nothing, frames that cannot be
scored are flagged, input that is not frames is refused in one line, small batches run on
the scorer's own threads."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from uedsteer.sim_devices.frames import generate_frames
from uedsteer.surrogates.scorer import SMALL_BATCH, FrameScorer
from uedsteer.surrogates.scores import Scores

N = 261
FIELDS = ("class_probs", "latent", "recon_error", "frame_quality", "heating", "progress")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Three pristine 2H frames (a reference) and three more to score."""
    f, _ = generate_frames("ref_2H", 6, seed=2901, noise_level=(0.0, 0.2))
    return f


@pytest.fixture
def scorer(frames: np.ndarray) -> FrameScorer:
    """A fresh pretrained scorer with ``frames[:3]`` as its reference."""
    s = FrameScorer.pretrained()
    s.set_reference(frames[:3])
    return s


def assert_same_scores(a: Scores, b: Scores) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.class_names() == b.class_names() and a.flags == b.flags


def assert_one_line(err: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


# ---------------------------------------------------------------- references (finding 15)
def _bad_stacks(frames: np.ndarray) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    good = frames[:3].copy()
    nan, saturated = good.copy(), good.copy()
    nan[1, 100, 100] = np.nan
    saturated[2].flat[: 2 * N * N // 100] = 65535.0
    return {
        "nan": (nan, ("frames[1]", "'nan'", "allowed")),
        "all zero": (np.zeros_like(good), ("frames[0]", "'zero'", "allowed")),
        "negated": (-good, ("frames[0]", "'negative'", "allowed")),
        "inf": (np.where(good > 1e3, np.inf, good), ("frames[0]", "'inf'", "allowed")),
        "saturated": (saturated, ("frames[2]", "'saturated'", "allowed")),
        "two frames": (good[:2], ("frames holds 2 frames", ">= 3")),
        "wrong size": (good[:, :200, :200], ("frames has shape (3, 200, 200)", "allowed")),
        "one frame": (good[0], ("frames has shape (261, 261)", "stack")),
        "complex": (good.astype(np.complex64), ("complex64", "real numbers")),
        "text": (np.full((3, N, N), "x"), ("dtype <U1", "allowed")),
    }


@pytest.mark.parametrize(
    "case",
    [
        "nan",
        "all zero",
        "negated",
        "inf",
        "saturated",
        "two frames",
        "wrong size",
        "one frame",
        "complex",
        "text",
    ],
)
def test_rejected_reference_leaves_the_previous_one_in_force(scorer, frames, case):
    before = scorer.score(frames[3:])
    reference = scorer.reference.copy()
    assert before.class_names() == ["ref_2H"] * 3
    bad, parts = _bad_stacks(frames)[case]
    with pytest.raises(ValueError) as err:
        scorer.set_reference(bad)
    np.testing.assert_array_equal(scorer.reference, reference)
    assert_same_scores(scorer.score(frames[3:]), before)
    assert_one_line(err, "frames", *parts)


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        (np.zeros((N, N)), ("reference is flagged 'zero'", "allowed")),
        (np.full((N, N), np.nan), ("reference is flagged 'nan'", "allowed")),
        (-np.ones((N, N)), ("reference is flagged 'negative'", "allowed")),
        (np.ones((N + 1, N + 1)), ("reference has shape (262, 262)", "allowed")),
        (None, ("reference is a NoneType", "allowed")),
    ],
)
def test_reference_property_validates_the_same_way(scorer, frames, value, parts):
    before = scorer.score(frames[3:])
    reference = scorer.reference.copy()
    with pytest.raises(ValueError) as err:
        scorer.reference = value
    np.testing.assert_array_equal(scorer.reference, reference)
    assert_same_scores(scorer.score(frames[3:]), before)
    assert_one_line(err, *parts)


def test_a_reference_without_bragg_intensity_is_rejected_before_the_swap(scorer, frames):
    before = scorer.score(frames[3:])
    centre_only = np.zeros((N, N))
    centre_only[N // 2, N // 2] = 1.0  # all intensity inside the beam stop
    with pytest.raises(ValueError) as err:
        scorer.reference = centre_only
    assert_same_scores(scorer.score(frames[3:]), before)
    assert_one_line(err, "reference is rejected", "beam stop", "allowed")


def test_a_good_reference_is_still_taken(scorer, frames):
    other, _ = generate_frames("ref_2H", 3, seed=2902, noise_level=(0.3, 0.3))
    before = scorer.reference.copy()
    scorer.set_reference(other)
    assert not np.array_equal(scorer.reference, before)
    scorer.reference = before
    np.testing.assert_array_equal(scorer.reference, before)


def test_constructor_refuses_a_bad_reference(scorer):
    with pytest.raises(ValueError) as err:
        FrameScorer(scorer.cnn, scorer.vae, scorer.line, np.zeros((N, N)))
    assert_one_line(err, "reference is flagged 'zero'")


# ---------------------------------------------------------------- frames (finding 16)
@pytest.mark.parametrize("empty", [np.zeros((0, N, N)), np.zeros((0, N, N), np.uint16), []])
def test_an_empty_batch_gives_empty_scores(scorer, empty):
    s = scorer.score(empty)
    assert len(s) == 0 and s.flags == [] and s.class_names() == []
    assert s.class_probs.shape == (0, 8) and s.latent.shape == (0, scorer.vae.latent_dim)
    assert s.valid.dtype == bool and s.crystal_system.shape == (0,)


def test_frames_that_cannot_be_scored_are_flagged(scorer, frames):
    good = frames[3]
    nan, inf = good.copy(), good.copy()
    nan[5, 5], inf[7, 7] = np.nan, np.inf
    offset = good - 2 * good.max()  # every pixel negative
    pedestal = -good + 2 * good.mean()  # negated, then a pedestal: total > 0, peaks < 0
    batch = np.stack([good, -good, offset, pedestal, nan, inf, np.zeros((N, N))])
    assert pedestal.sum() > 0
    s = scorer.score(batch)
    assert s.flags == ["", "negative", "negative", "negative", "nan", "inf", "zero"]
    assert s.valid.tolist() == [True] + [False] * 6
    assert s.class_names() == ["ref_2H"] + ["invalid"] * 6
    assert np.isnan(s.damage_prob[1:]).all() and np.isnan(s.class_probs[1:]).all()
    # the scored frame's numbers do not depend on its neighbours
    alone = scorer.score(good)
    np.testing.assert_allclose(s.class_probs[0], alone.class_probs[0], atol=1e-6)


def test_weak_frames_with_dark_noise_are_not_negative(scorer):
    # dark-subtracted frames have negative noise pixels; they stay valid
    for label in ("degraded", "vacancy_1Tp"):
        f, _ = generate_frames(label, 3, seed=2903, noise_level=(0.5, 0.5), charge_fc=(5, 5))
        assert (f < 0).any()
        assert scorer.score(f).flags == ["", "", ""]
    # far below the gun's 1 fC: noise as strong as the Bragg peaks, still not "negative"
    from uedsteer.sim_devices.beamline import FrameRenderer
    from uedsteer.sim_devices.response import site_vacancy_state

    renderer, rng = FrameRenderer(), np.random.default_rng(2904)
    state = site_vacancy_state(0.5, 0.1, 0.075)
    faint = np.stack([renderer.render(state, 0.1, rng) for _ in range(8)])
    assert (-faint.min((1, 2)) > faint.max((1, 2))).any()  # strongest pixel negative
    assert "negative" not in scorer.score(faint).flags


def test_complex_frames_are_flagged_not_scored(scorer, frames):
    s = scorer.score(frames[3:5].astype(np.complex128))
    assert s.flags == ["complex", "complex"] and not s.valid.any()
    mixed = scorer.score([frames[3], frames[4] + 0j, frames[5]])
    assert mixed.flags == ["", "complex", ""]
    np.testing.assert_allclose(
        mixed.class_probs[[0, 2]], scorer.score(frames[[3, 5]]).class_probs, atol=1e-6
    )


def test_a_frame_of_another_size_in_a_list_is_flagged(scorer, frames):
    s = scorer.score([frames[3], np.ones((100, 100)), frames[4]])
    assert s.flags == ["", "shape", ""] and s.valid.tolist() == [True, False, True]
    assert s.predicted_class[1] == -1 and np.isnan(s.latent[1]).all()
    np.testing.assert_allclose(
        s.class_probs[[0, 2]], scorer.score(frames[3:5]).class_probs, atol=1e-6
    )


def test_integer_frames_score_like_float_frames(scorer, frames):
    counts = np.clip(np.round(frames[3:5]), 0, 65534).astype(np.uint16)
    a, b = scorer.score(counts), scorer.score(counts.astype(np.float32))
    assert a.flags == ["", ""]
    np.testing.assert_array_equal(a.class_probs, b.class_probs)


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        (np.zeros(N), ("frames has shape (261,)", "dtype float64", "allowed")),
        (np.zeros((1, 1, N, N)), ("frames has shape (1, 1, 261, 261)", "allowed")),
        (np.zeros((2, 100, 100)), ("frames has shape (2, 100, 100)", "allowed")),
        (np.zeros((N, N), bool), ("dtype bool", "real numbers")),
        (np.full((N, N), "1.0"), ("dtype <U3", "real numbers")),
        (np.empty((2, N, N), object), ("dtype object", "real numbers")),
        ("frame.npy", ("frames is", "str", "allowed")),
        (None, ("frames is a NoneType", "allowed")),
        (5.0, ("frames has shape ()", "allowed")),
        ([np.zeros((N, N)), np.zeros((2, N, N))], ("frames[1] has shape (2, 261, 261)",)),
        ([np.zeros((N, N)), "x"], ("frames[1]", "dtype <U1")),
    ],
)
def test_input_that_is_not_frames_is_refused_in_one_line(scorer, value, parts):
    with pytest.raises(ValueError) as err:
        scorer.score(value)
    assert_one_line(err, *parts)


# ---------------------------------------------------------------- threads (finding 17)
def _threads_seen(scorer: FrameScorer, batch: np.ndarray) -> list[int]:
    seen: list[int] = []
    hook = scorer.cnn.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        scorer.score(batch)
    finally:
        hook.remove()
    return seen


def test_small_batches_run_on_the_scorer_threads_and_restore_torch(scorer, frames):
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert scorer.threads == 1
        assert _threads_seen(scorer, frames[3]) == [1]
        assert torch.get_num_threads() == 2
        big = np.concatenate([frames] * (SMALL_BATCH // len(frames) + 1))
        assert len(big) > SMALL_BATCH and _threads_seen(scorer, big) == [2]
        scorer.threads = None
        assert _threads_seen(scorer, frames[3]) == [2]
    finally:
        torch.set_num_threads(old)


def test_thread_setting_does_not_change_the_scores(scorer, frames):
    one = scorer.score(frames[3:])
    shared = FrameScorer(
        scorer.cnn, scorer.vae, scorer.line, scorer.reference, scorer.recon_scale, threads=None
    )
    other = shared.score(frames[3:])
    for name in FIELDS:
        np.testing.assert_allclose(getattr(one, name), getattr(other, name), atol=1e-5)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_threads_must_be_a_positive_int_or_none(scorer, threads):
    with pytest.raises(ValueError) as err:
        FrameScorer(scorer.cnn, scorer.vae, scorer.line, scorer.reference, threads=threads)
    assert_one_line(err, f"threads={threads!r}", "int >= 1 or None")


def test_concurrent_branches_give_the_sequential_scores_bit_for_bit(scorer, frames):
    sequential = copy.deepcopy(scorer)
    sequential.concurrent = False
    for batch in (frames[3], frames[:SMALL_BATCH]):
        one, other = scorer.score(batch), sequential.score(batch)
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(one, name), getattr(other, name))


def test_scoring_from_several_threads_at_once(scorer, frames):
    expected = [scorer.score(f).class_probs for f in frames]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda f: scorer.score(f).class_probs, list(frames) * 3))
    for i, probs in enumerate(got):
        np.testing.assert_array_equal(probs, expected[i % len(frames)])


def test_a_scorer_that_has_scored_can_be_copied(scorer, frames):
    scorer.score(frames[0])
    clone = copy.deepcopy(scorer)
    np.testing.assert_array_equal(
        clone.score(frames[0]).class_probs, scorer.score(frames[0]).class_probs
    )


def test_the_thread_budget_bounds_the_scorer_workers(scorer, frames, monkeypatch):
    """A budget of one core (issue 34): both branches on one worker thread, the same numbers
    bit for bit; a budget of two: two workers again."""
    from uedsteer.surrogates import threads

    two = scorer.score(frames[3:5])
    monkeypatch.setattr(threads, "_applied", threads.choose_thread_budget(1, environ={}))
    assert scorer.workers == 1
    names: list[str] = []
    for branch in (scorer.cnn, scorer.vae.encoder):
        branch.register_forward_hook(lambda *_: names.append(threading.current_thread().name))
    assert_same_scores(scorer.score(frames[3:5]), two)
    assert len(names) == 2 and names[0] == names[1]  # both branches on one thread
    # the calling thread where it computes on the workers' torch threads, else the one worker
    inline = torch.get_num_threads() == scorer.threads
    assert (names[0] == threading.current_thread().name) == inline
    assert inline or names[0].startswith("uedsteer-scorer")
    assert _threads_seen(scorer, frames[3]) == [1]
    monkeypatch.setattr(threads, "_applied", threads.choose_thread_budget(2, environ={}))
    assert scorer.workers == 2
    assert_same_scores(scorer.score(frames[3:5]), two)


def _branch_threads(scorer, batch) -> list[str]:
    names: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_: names.append(threading.current_thread().name))
        for m in (scorer.cnn, scorer.vae.encoder)
    ]
    try:
        scorer.score(batch)
    finally:
        for h in hooks:
            h.remove()
    return names


def test_the_branches_run_where_they_wait_least(scorer, frames, monkeypatch):
    """Issues 29 and 34. A calling thread on the workers' one torch thread scores both
    branches itself (a worker would wait for a core to start and again to hand back); a
    caller that splits its operations hands the frame to the workers: both branches at once
    on free cores, one after the other on one worker where other processes keep the cores
    busy. The numbers are the same bit for bit."""
    from uedsteer.surrogates import threads

    if threads.affinity_cores() < 2:
        pytest.skip("one core: the branches never run at once")
    old = torch.get_num_threads()
    torch.set_num_threads(2)  # a caller that splits its own operations: the workers score
    try:
        monkeypatch.setattr(threads._monitor, "recent", lambda: 0.0)
        assert threads.free_workers(2) == 2
        free = scorer.score(frames[3:5])
        # both branches are handed to the workers at once; which worker takes the second is
        # the scheduler's (a busy suite may let the first worker finish and take it too), so
        # a few frames must show both workers at work
        seen = [_branch_threads(scorer, frames[3:5]) for _ in range(10)]
        assert all(n.startswith("uedsteer-scorer") for names in seen for n in names)
        assert any(len(set(names)) == 2 for names in seen), seen
        monkeypatch.setattr(threads._monitor, "recent", lambda: 2.0)
        assert threads.free_workers(2) == 1
        names = _branch_threads(scorer, frames[3:5])  # busy cores: one worker, in turn
        assert names[0] == names[1] and names[0].startswith("uedsteer-scorer")
        assert_same_scores(scorer.score(frames[3:5]), free)
        torch.set_num_threads(1)  # a caller on the workers' setting scores in its own thread
        for recent in (0.0, 2.0):
            monkeypatch.setattr(threads._monitor, "recent", lambda r=recent: r)
            assert _branch_threads(scorer, frames[3:5]) == [threading.current_thread().name] * 2
        assert_same_scores(scorer.score(frames[3:5]), free)
    finally:
        torch.set_num_threads(old)
