"""Bragg lists as the models take them: preprocessing, detector window, orientation."""

from __future__ import annotations

import numpy as np
import pytest

from uedsteer.surrogates.crystal.bragg_lists import (
    crop_bragg,
    jitter_positions,
    orient_bragg,
    preprocess_bragg,
)
from uedsteer.surrogates.crystal.features import radial_basis


def random_list(rng, n, q_max=2.4):
    return np.column_stack([rng.uniform(-q_max, q_max, (n, 2)), rng.uniform(0, 1, n)])


def test_preprocess_drops_central_beam_and_scales_to_0_3():
    rng = np.random.default_rng(3)
    bragg = random_list(rng, 8, q_max=1.0)
    bragg[2] = [0.0, 0.0, 50.0]
    out = preprocess_bragg(bragg)
    assert out.shape == (7, 3)
    assert not np.any((out[:, 0] == 0) & (out[:, 1] == 0))
    assert out[:, 2].sum() == pytest.approx(0.3)
    rest = np.delete(bragg, 2, axis=0)
    np.testing.assert_allclose(out[:, 2], rest[:, 2] * 0.3 / rest[:, 2].sum())
    # radial_basis(preprocess=True) is eqs. (1)-(2) on the preprocessed list
    np.testing.assert_allclose(radial_basis(bragg), radial_basis(out, preprocess=False))


def test_preprocess_rejects_too_few_spots_with_the_count():
    four = np.array([[0, 0, 9.0], [0.3, 0, 1], [0, 0.3, 1], [-0.3, 0, 1]])
    with pytest.raises(ValueError, match=r"has 4 spots.*min_spots=5"):
        preprocess_bragg(four)
    assert preprocess_bragg(four, min_spots=4).shape == (3, 3)
    with pytest.raises(ValueError, match=r"bragg_lists\[1\] has 4 spots"):
        radial_basis([np.vstack([four, [[0.5, 0.5, 1.0]]]), four])


def test_preprocess_drops_the_beam_at_the_origin_even_when_a_reflection_is_brighter():
    # thick crystals: multiple scattering can make a diffracted beam outshine the central one
    bragg = np.array(
        [[0.0, 0.0, 0.2], [0.5, 0.0, 0.5], [-0.5, 0.0, 0.1], [0.0, 0.5, 0.1], [0.0, -0.5, 0.1]]
    )
    out = preprocess_bragg(bragg)
    assert len(out) == 4
    assert not np.any(np.hypot(out[:, 0], out[:, 1]) < 1e-9)
    np.testing.assert_allclose(out[:, 2].sum(), 0.3)
    # without a spot at the origin the brightest one is taken as the central beam
    shifted = bragg[1:].copy()
    shifted = np.vstack([shifted, [0.7, 0.7, 0.05]])
    out = preprocess_bragg(shifted)
    assert not np.any(np.isclose(out[:, 0], 0.5) & np.isclose(out[:, 1], 0.0))


def test_crop_bragg_keeps_the_central_beam_and_the_detector_window():
    bragg = np.array(
        [[0.0, 0.0, 1.0], [0.1, 0.0, 0.2], [0.5, 0.0, 0.2], [0.0, 1.2, 0.2], [1.5, 0.0, 0.2]]
    )
    out = crop_bragg(bragg, 0.16, 1.3)
    np.testing.assert_array_equal(out, bragg[[0, 2, 3]])
    with pytest.raises(ValueError, match="q_min"):
        crop_bragg(bragg, 1.0, 0.5)


def test_orient_bragg_makes_features_independent_of_in_plane_rotation():
    rng = np.random.default_rng(5)
    spots = rng.uniform(-1.5, 1.5, size=(30, 2))
    spots[0] = [0.3, 0.1]  # the unique shortest spot
    spots = spots[np.hypot(spots[:, 0], spots[:, 1]) >= np.hypot(0.3, 0.1) - 1e-12]
    bragg = np.vstack([[0.0, 0.0, 5.0], np.column_stack([spots, rng.uniform(0.1, 1, len(spots))])])
    a = orient_bragg(bragg)
    np.testing.assert_allclose(a[0], [0.0, 0.0, 5.0])
    assert a[1, 1] == pytest.approx(0.0, abs=1e-12) and a[1, 0] > 0
    for angle in (0.4, 2.0, -2.9):
        c, s = np.cos(angle), np.sin(angle)
        turned = bragg.copy()
        x, y = bragg[:, 0], bragg[:, 1]
        turned[:, 0], turned[:, 1] = c * x - s * y, s * x + c * y
        np.testing.assert_allclose(radial_basis(orient_bragg(turned)), radial_basis(a), atol=1e-9)


def test_the_central_beam_tolerance_is_the_radial_step():
    from uedsteer.surrogates.crystal.bragg_lists import CENTRAL_TOLERANCE
    from uedsteer.surrogates.crystal.features import DQ

    assert CENTRAL_TOLERANCE == DQ


def test_measured_positions_move_every_spot_but_the_central_beam_by_the_asked_error():
    rng = np.random.default_rng(3)
    lists = [np.vstack([[0.0, 0.0, 10.0], random_list(rng, 400)]) for _ in range(6)]
    moved = jitter_positions(lists, 0.004, seed=1)
    for before, after in zip(lists, moved, strict=True):
        np.testing.assert_array_equal(after[0], before[0])  # the origin of the measurement
        np.testing.assert_array_equal(after[:, 2], before[:, 2])  # intensities untouched
        step = after[1:, :2] - before[1:, :2]
        assert np.std(step) == pytest.approx(0.004, rel=0.1) and abs(np.mean(step)) < 5e-4
    # seeded; a range gives each list its own error, from exact to the largest
    again = jitter_positions(lists, 0.004, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(moved, again, strict=True))
    ranged = jitter_positions(lists * 5, (0.0, 0.004), seed=2)
    spread = [np.std(a[1:, :2] - b[1:, :2]) for a, b in zip(ranged, lists * 5, strict=True)]
    assert min(spread) < 0.001 and 0.003 < max(spread) < 0.0045
    assert jitter_positions(lists, 0.0)[2] is not lists[2]  # a copy, equal
    np.testing.assert_array_equal(jitter_positions(lists, 0.0)[2], lists[2])
    with pytest.raises(ValueError, match=r"rms=-0.001 must be .* 0 <= low <= high"):
        jitter_positions(lists, -0.001)
