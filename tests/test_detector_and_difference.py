import numpy as np
import pytest

from uedsteer.sim_devices.materials import MOTE2
from uedsteer.sim_devices.physics import (
    ELECTRONS_PER_FC,
    DetectorModel,
    difference_channels,
    kinematic_intensity,
    reference_pattern,
)


@pytest.fixture(scope="module")
def pattern(grid):
    return kinematic_intensity(MOTE2.supercell("2H", (30, 18)), grid)


def test_beam_stop_reads_zero(grid, pattern, rng):
    det = DetectorModel()
    frame = det.render(pattern, rng, grid, charge_fc=20, noise_level=0.3)
    assert frame.dtype == np.float32 and frame.shape == grid.shape
    assert np.all(frame[grid.q <= det.beam_stop_radius] == 0)
    assert frame[grid.q > det.beam_stop_radius].mean() > 0


def test_counts_follow_the_electron_budget(grid, pattern, rng):
    det = DetectorModel(readout_noise=0.0)
    q = 10.0
    frame = det.render(pattern, rng, grid, charge_fc=q)
    expected = q * ELECTRONS_PER_FC * det.pulses_per_frame * det.scattered_fraction
    assert frame.sum() == pytest.approx(expected, rel=0.01)
    assert np.allclose(frame, np.round(frame)), "Poisson counts are integers"


def test_more_charge_less_noise_more_blur(grid, pattern):
    det = DetectorModel(readout_noise=0.0)
    m = grid.q > det.beam_stop_radius

    def rel_noise(q):
        mean = det.expected_counts(pattern, grid, q)
        frames = [
            det.render(pattern, np.random.default_rng(s), grid, charge_fc=q) for s in range(4)
        ]
        resid = np.std([f[m] - mean[m] for f in frames]) / mean[m].mean()
        return resid, mean

    noise_lo, mean_lo = rel_noise(2.0)
    noise_hi, mean_hi = rel_noise(200.0)
    assert noise_hi < noise_lo / 5  # shot noise ∝ 1/√N: 100× the charge → ~10× less
    # space charge: peak sharpness (max over mean) drops at high charge
    assert (mean_hi.max() / mean_hi[m].mean()) < 0.9 * (mean_lo.max() / mean_lo[m].mean())
    assert det.psf_sigma(200) > det.psf_sigma(1) >= det.psf_sigma_px


def test_same_seed_same_frame(grid, pattern):
    det = DetectorModel()
    a = det.render(pattern, np.random.default_rng(5), grid, noise_level=0.5, scale=2.0)
    b = det.render(pattern, np.random.default_rng(5), grid, noise_level=0.5, scale=2.0)
    c = det.render(pattern, np.random.default_rng(6), grid, noise_level=0.5, scale=2.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"charge_fc": 0.0}, "charge_fc"),
        ({"noise_level": 1.5}, "noise_level"),
        ({"scale": -1.0}, "scale"),
    ],
)
def test_render_rejects_bad_arguments(grid, pattern, rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        DetectorModel().render(pattern, rng, grid, **kwargs)


def test_detector_config_is_strict():
    with pytest.raises(ValueError, match="psf_sigma"):
        DetectorModel(psf_sigma=3)  # typo of psf_sigma_px: extra fields are forbidden
    with pytest.raises(ValueError, match="scattered_fraction"):
        DetectorModel(scattered_fraction=0.0)


def test_difference_channels(grid, pattern, rng):
    det = DetectorModel(readout_noise=0.0)
    refs = np.stack(
        [det.render(pattern, np.random.default_rng(s), grid, shot_noise=False) for s in range(3)]
    )
    same = difference_channels(refs[0], refs)
    assert same.shape == (2, 261, 261) and same.dtype == np.float32
    assert same.max() <= 1.0 and same.min() >= 0.0
    frame = refs.astype(np.float64).mean(axis=0)
    c = grid.n // 2
    frame[c + 40, c] += 5 * frame.max()
    frame[grid.q > 1.0] *= 0.5
    ch = difference_channels(frame, refs, normalize=False)
    assert ch[0, c + 40, c] == 1.0, "gain lands in channel 0 (red)"
    assert ch[1][grid.q > 1.0].mean() > 0, "loss lands in channel 1 (blue)"
    assert ch[0][grid.q > 1.0].max() == 0
    # a change of beam intensity alone is no structural change once normalized
    drift = difference_channels(3.0 * refs[0], refs[0])
    assert drift.max() == 0.0
    batch = difference_channels(np.stack([frame, refs[1]]), refs, normalize=False)
    assert batch.shape == (2, 2, 261, 261) and np.allclose(batch[0], ch)


def test_difference_bad_input(grid):
    ones = np.ones(grid.shape)
    with pytest.raises(ValueError, match="at least 3"):
        reference_pattern(np.stack([ones, ones]))
    with pytest.raises(ValueError, match="NaN"):
        difference_channels(np.full(grid.shape, np.nan), ones)
    with pytest.raises(ValueError, match="shape"):
        difference_channels(np.ones((5, 5)), ones)
