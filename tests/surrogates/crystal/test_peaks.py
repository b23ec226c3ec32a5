"""Bragg-peak finding on UED frames, and the scorer's optional crystal output."""

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from uedsteer.controller.record import score_row
from uedsteer.sim_devices.frames import generate_frames
from uedsteer.sim_devices.materials import MOTE2
from uedsteer.sim_devices.physics import (
    DetectorModel,
    ReciprocalGrid,
    kinematic_intensity,
)
from uedsteer.surrogates.cnn import UEDNet
from uedsteer.surrogates.crystal.peaks import find_bragg_peaks, frame_to_bragg, peak_options
from uedsteer.surrogates.scorer import FrameScorer
from uedsteer.surrogates.scores import Scores
from uedsteer.surrogates.vae import ConvVAE, LatentLine

GRID = ReciprocalGrid()
DQ = GRID.dq
BEAM_STOP = DetectorModel().beam_stop_radius
A_2H = 3.52  # Å, hexagonal 2H-MoTe2
A_1TP, B_1TP = 3.53, 6.27  # Å, rectangular 1T' cell
G1 = 2.0 / (math.sqrt(3.0) * A_2H)  # first-order hexagonal ring, 1/Å
# Small supercells: a Bragg peak of the seed's 51 × 30 cells is narrower than a pixel, so the
# grid samples some reflections near a zero of their shape transform (2H (1 1) almost vanishes
# there). 20 × 12 cells give peaks wider than a pixel: every reflection is sampled fairly.
SIZE = (20, 12)


def _clean(phase: str) -> np.ndarray:
    """Noise-free detector frame (point spread and beam stop only)."""
    intensity = kinematic_intensity(MOTE2.supercell(phase, SIZE), GRID)
    det = DetectorModel(readout_noise=0.0)
    return det.render(intensity, np.random.default_rng(0), GRID, charge_fc=10.0, shot_noise=False)


@pytest.fixture(scope="module")
def clean_2h():
    return _clean("2H")


@pytest.fixture(scope="module")
def clean_1tp():
    return _clean("1T'")


def _hex_points(order_max: int = 8) -> np.ndarray:
    """Hexagonal reciprocal lattice of a = 3.52 Å, first-order spots at 30°, 90°, …"""
    b1 = G1 * np.array([math.cos(math.pi / 6), math.sin(math.pi / 6)])
    b2 = G1 * np.array([0.0, 1.0])
    m, n = np.mgrid[-order_max : order_max + 1, -order_max : order_max + 1]
    return m.reshape(-1, 1) * b1 + n.reshape(-1, 1) * b2


def _rect_points(a: float, b: float) -> np.ndarray:
    h, k = np.mgrid[-6:7, -10:11]
    return np.stack([h.ravel() / a, k.ravel() / b], axis=1)


def _distance_px(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance in pixels from every point to its nearest target."""
    return np.sqrt(((points[:, None, :] - targets[None]) ** 2).sum(-1)).min(1) / DQ


def _sixfold_fraction(peaks: np.ndarray, tol_px: float = 1.5) -> float:
    """Share of reflections whose 60°-rotated position is also a found reflection (counting
    only rotations that land where a reflection could be seen)."""
    xy = peaks[1:, :2]
    c, s = math.cos(math.pi / 3), math.sin(math.pi / 3)
    rot = xy @ np.array([[c, s], [-s, c]])
    seen = (np.abs(rot).max(1) < GRID.q_max - 0.05) & (np.hypot(*rot.T) > BEAM_STOP + 0.03)
    return float(np.mean(_distance_px(rot[seen], xy) < tol_px))


# ----------------------------------------------------------------------------- geometry


def test_clean_2h_peaks_sit_on_the_hexagonal_lattice(clean_2h):
    peaks = find_bragg_peaks(clean_2h)
    assert peaks.ndim == 2 and peaks.shape[1] == 3 and len(peaks) > 30
    refl = peaks[1:]
    # every reflection within one pixel of a hexagonal Bragg position
    assert _distance_px(refl[:, :2], _hex_points()).max() < 1.0
    # the first order: six spots at |q| = 2/(√3 a), 60° apart
    q = np.hypot(refl[:, 0], refl[:, 1])
    first = refl[np.abs(q - G1) < 1.5 * DQ]
    assert len(first) == 6
    assert np.all(np.abs(np.hypot(first[:, 0], first[:, 1]) - G1) < DQ)
    angles = np.sort(np.degrees(np.arctan2(first[:, 1], first[:, 0])) % 360.0)
    steps = np.diff(np.append(angles, angles[0] + 360.0))
    assert np.allclose(steps, 60.0, atol=np.degrees(DQ / G1))  # one pixel of arc
    # first-order intensities are equal (6/mmm pattern) within 10 %
    assert first[:, 2].min() > 0.9 * first[:, 2].max()
    assert _sixfold_fraction(peaks) > 0.95


def test_clean_1tp_peaks_are_not_sixfold(clean_1tp, clean_2h):
    peaks = find_bragg_peaks(clean_1tp)
    refl = peaks[1:]
    assert len(refl) > 20
    # on the rectangular 1T' lattice …
    assert _distance_px(refl[:, :2], _rect_points(A_1TP, B_1TP)).max() < 1.5
    # … with reflections a hexagonal cell cannot have, e.g. (0 3) at 3/b = 0.478 1/Å
    assert (_distance_px(refl[:, :2], _hex_points()) > 5).sum() >= 4
    assert np.any(_distance_px(np.array([[0.0, 3 / B_1TP]]), refl[:, :2]) < 1.0)
    # and its 60° rotation mostly misses: far from six-fold (2H: > 0.95)
    assert _sixfold_fraction(peaks) < 0.5


def test_noisy_frames_keep_first_and_second_orders():
    frames, params = generate_frames(
        "ref_2H", 3, seed=7, base_size=SIZE, noise_level=(0.5, 0.5), charge_fc=(5.0, 20.0)
    )
    expected = _hex_points(2)
    q = np.hypot(*expected.T)
    low = expected[(q > 0.2) & (q < 0.6)]  # first (|q| = 0.328) and second order (0.569)
    assert len(low) == 12
    for frame, p in zip(frames, params, strict=True):
        peaks = find_bragg_peaks(frame)
        found = _distance_px(low, peaks[1:, :2]) < 1.5
        assert found.sum() >= 10, f"frame with charge {p['charge_fc']:.0f} fC: {found}"
        # no reflection at or inside the beam stop; the only row there is the central beam
        assert np.all(np.hypot(peaks[1:, 0], peaks[1:, 1]) > BEAM_STOP)


def test_subpixel_position_and_integrated_intensity():
    # two isotropic Gaussian spots at known sub-pixel positions, amplitude ratio 3
    iy, ix = np.mgrid[0 : GRID.n, 0 : GRID.n].astype(float)
    spots = [(160.3, 100.6, 100.0), (90.75, 200.2, 300.0)]
    frame = np.zeros(GRID.shape)
    for y, x, amp in spots:
        frame += amp * np.exp(-((iy - y) ** 2 + (ix - x) ** 2) / (2 * 4.0**2))
    frame[GRID.q <= BEAM_STOP] = 0.0
    peaks = find_bragg_peaks(frame)
    assert len(peaks) == 3
    half = GRID.n // 2
    for y, x, _ in spots:
        qx, qy = (x - half) * DQ, (y - half) * DQ
        assert _distance_px(np.array([[qx, qy]]), peaks[1:, :2])[0] < 0.1
    assert peaks[1, 2] / peaks[2, 2] == pytest.approx(3.0, rel=0.01)


# ------------------------------------------------------------------- beam stop, central beam


def test_central_beam_row_and_beam_stop(clean_2h):
    peaks = find_bragg_peaks(clean_2h, central_beam_factor=4.0)
    assert peaks[0, :2].tolist() == [0.0, 0.0]
    assert peaks[0, 2] == pytest.approx(4.0 * peaks[1:, 2].max())
    assert np.all(np.diff(peaks[1:, 2]) <= 0), "reflections by decreasing intensity"
    # a wider stop than the frame's: nothing reported inside it
    wide = find_bragg_peaks(clean_2h, beam_stop_radius=0.4)
    assert np.all(np.hypot(wide[1:, 0], wide[1:, 1]) > 0.4)
    assert len(wide) < len(peaks)
    assert len(find_bragg_peaks(clean_2h, max_peaks=5)) == 6


def test_unmasked_central_beam_is_replaced_by_the_synthetic_row(clean_2h):
    frame = clean_2h.astype(np.float64) + 0.01  # no exact zeros: no beam stop inferred
    frame += 50 * clean_2h.max() * np.exp(-(GRID.q**2) / (2 * 0.04**2))
    peaks = find_bragg_peaks(frame)
    refl = peaks[1:]
    assert np.all(np.hypot(refl[:, 0], refl[:, 1]) > 0.07)
    assert peaks[0, :2].tolist() == [0.0, 0.0] and peaks[0, 2] > refl[:, 2].max()


def test_degraded_speckle_is_not_taken_for_reflections():
    # a molten spot scatters into a diffuse halo with blurred speckle: no lattice, so (almost)
    # no peaks, fewer than the 5 rows the crystal predictor needs
    frames, _ = generate_frames("degraded", 3, seed=4)
    for bragg in frame_to_bragg(frames):
        assert len(bragg) < 5


def test_noise_only_frame_gives_no_peaks():
    frame = np.random.default_rng(1).normal(0.0, 0.5, GRID.shape)
    frame[GRID.q <= BEAM_STOP] = 0.0
    assert find_bragg_peaks(frame).shape == (0, 3)


# ------------------------------------------------------------------------- batches, bad input


def test_frame_to_bragg_matches_single_frames(clean_2h, clean_1tp):
    lists = frame_to_bragg(np.stack([clean_2h, clean_1tp]))
    assert len(lists) == 2
    assert np.array_equal(lists[0], find_bragg_peaks(clean_2h))
    assert np.array_equal(lists[1], find_bragg_peaks(clean_1tp))
    assert np.array_equal(
        frame_to_bragg(clean_2h, threshold=0.05)[0], find_bragg_peaks(clean_2h, threshold=0.05)
    )


def test_bad_frames_raise(clean_2h):
    with pytest.raises(ValueError, match="frame has shape"):
        find_bragg_peaks(np.ones((100, 100)))
    with pytest.raises(ValueError, match="frame has shape"):
        find_bragg_peaks(np.ones((2, 261, 261)))
    nan = clean_2h.copy()
    nan[3, 4] = np.nan
    with pytest.raises(ValueError, match="frame has 1 NaN"):
        find_bragg_peaks(nan)
    inf = clean_2h.copy()
    inf[3, 4] = np.inf
    with pytest.raises(ValueError, match="frame .*infinite"):
        find_bragg_peaks(inf)
    with pytest.raises(ValueError, match="frame is all zero"):
        find_bragg_peaks(np.zeros(GRID.shape))
    with pytest.raises(ValueError, match=r"frames\[1\] is all zero"):
        frame_to_bragg(np.stack([clean_2h, np.zeros(GRID.shape)]))
    with pytest.raises(ValueError, match="frames has shape"):
        frame_to_bragg(np.ones((2, 3, 261, 261)))
    with pytest.raises(ValueError, match="threshold"):
        find_bragg_peaks(clean_2h, threshold=1.5)
    with pytest.raises(ValueError, match="background"):
        find_bragg_peaks(clean_2h, background="rolling-ball")
    with pytest.raises(ValueError, match="central_beam_factor"):
        find_bragg_peaks(clean_2h, central_beam_factor=0.5)
    with pytest.raises(ValueError, match="unknown peak option"):
        peak_options(min_distance=3)


# ----------------------------------------------------------------------------- scorer


class FakePredictor:
    """Duck-typed crystal predictor: 'hexagonal' for lists with ≥ 5 rows."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[np.ndarray]] = []
        self.fail = fail

    def predict(self, bragg_lists):
        if self.fail:
            raise RuntimeError("model file missing")
        self.calls.append(list(bragg_lists))
        n = len(bragg_lists)
        ok = np.array([len(b) >= 5 for b in bragg_lists])
        return SimpleNamespace(
            crystal_system=np.where(ok, "hexagonal", ""),
            system_confidence=np.where(ok, 0.75, np.nan),
            valid=ok,
            space_group=np.zeros(n, int),
        )


@pytest.fixture(scope="module")
def scorer_and_frames(clean_2h, clean_1tp):
    import torch

    torch.manual_seed(0)
    scorer = FrameScorer(UEDNet(), ConvVAE(4), LatentLine([0] * 4, [1] * 4), clean_2h)
    bad = clean_2h.copy()
    bad[0, 0] = np.nan
    tiny = np.zeros(GRID.shape, np.float32)  # one weak spot: too few peaks for the predictor
    tiny[40, 40] = 1.0
    return scorer, np.stack([clean_2h, bad, clean_1tp, tiny])


def test_scorer_without_crystal_predictor(scorer_and_frames):
    scorer, frames = scorer_and_frames
    assert scorer.crystal is None
    s = scorer.score(frames)
    assert s.crystal_system.tolist() == [""] * 4 and np.isnan(s.crystal_confidence).all()
    row = s.row(0)
    assert row["crystal_system"] == "" and math.isnan(row["crystal_confidence"])
    # a Scores made the old way (no crystal fields) gets the empty defaults
    old = Scores(**{k: getattr(s, k) for k in Scores.__dataclass_fields__ if "crystal" not in k})
    assert old.crystal_system.shape == (4,) and np.isnan(old.crystal_confidence).all()


def test_scorer_with_crystal_predictor(scorer_and_frames):
    scorer, frames = scorer_and_frames
    plain = scorer.score(frames)
    fake = FakePredictor()
    scorer.attach_crystal_predictor(fake, threshold=0.02)
    try:
        s = scorer.score(frames)
    finally:
        scorer.attach_crystal_predictor(None)
    assert scorer.crystal is None
    # only the valid frames (not the NaN one) were read; row 0 of a list is the central beam
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 3
    for bragg in fake.calls[0][:2]:
        assert bragg.shape[1] == 3 and bragg[0, :2].tolist() == [0.0, 0.0]
    assert np.array_equal(fake.calls[0][0], find_bragg_peaks(frames[0], threshold=0.02))
    assert s.crystal_system.tolist() == ["hexagonal", "", "hexagonal", ""]
    assert s.crystal_confidence[[0, 2]].tolist() == [0.75, 0.75]
    assert np.isnan(s.crystal_confidence[[1, 3]]).all()
    # the rest of the scores is unchanged
    assert np.array_equal(s.class_probs, plain.class_probs, equal_nan=True)
    assert s.flags == plain.flags
    row = s.row(0)
    assert row["crystal_system"] == "hexagonal" and type(row["crystal_system"]) is str
    assert type(row["crystal_confidence"]) is float
    # the campaign's flattened score row stays numeric (string fields are not carried)
    flat = score_row(row)
    assert all(isinstance(v, float) for v in flat.values())
    assert "crystal_system" not in flat


def test_failing_or_bad_predictor(scorer_and_frames):
    scorer, frames = scorer_and_frames
    scorer.attach_crystal_predictor(FakePredictor(fail=True))
    try:
        with pytest.warns(RuntimeWarning, match="model file missing"):
            s = scorer.score(frames[:1])
    finally:
        scorer.attach_crystal_predictor(None)
    assert s.crystal_system.tolist() == [""] and np.isnan(s.crystal_confidence).all()
    assert s.valid.all()
    with pytest.raises(ValueError, match="predict"):
        scorer.attach_crystal_predictor(object())
    with pytest.raises(ValueError, match="threshold"):
        scorer.attach_crystal_predictor(FakePredictor(), threshold=2.0)
    assert scorer.crystal is None


def test_pretrained_accepts_a_crystal_predictor(clean_2h):
    fake = FakePredictor()
    scorer = FrameScorer.pretrained(crystal=fake)
    assert scorer.crystal is fake
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = scorer.score(clean_2h)
    assert s.crystal_system.tolist() == ["hexagonal"] and s.crystal_confidence[0] == 0.75
