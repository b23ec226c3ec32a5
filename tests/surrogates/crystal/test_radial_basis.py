"""Radial-basis features of Bragg lists (Gleason et al. 2024 eqs. 1-2) and their preprocessing."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from uedsteer.surrogates.crystal.features import (
    N_FEATURES,
    feature_index,
    preprocess_bragg,
    radial_basis,
)

HALF = N_FEATURES // 2
SMALL = {"n_estimators": 10}


def direct_features(bragg, dq=0.05, n_radial=41, p_max=12):
    """Eqs. (1)-(2) as a plain double loop over spots and (m, p)."""
    tau = np.zeros((n_radial, p_max + 1), dtype=complex)
    for qx, qy, intensity in bragg:
        q, phi = math.hypot(qx, qy), math.atan2(qy, qx)
        for m in range(n_radial):
            weight = max(1 - abs(q - m * dq) / dq, 0.0)
            for p in range(p_max + 1):
                tau[m, p] += weight * cmath.exp(1j * p * phi) * intensity
    tau = tau.ravel()
    return np.concatenate([np.abs(tau), np.angle(tau)])


def random_list(rng, n, q_max=2.4):
    return np.column_stack([rng.uniform(-q_max, q_max, (n, 2)), rng.uniform(0, 1, n)])


def assert_features_close(got, want):
    np.testing.assert_allclose(got[:HALF], want[:HALF], atol=1e-12)
    # arguments: compare on the circle and only where the magnitude is not rounding noise
    big = want[:HALF] > 1e-9
    diff = np.angle(np.exp(1j * (got[HALF:] - want[HALF:])))
    np.testing.assert_allclose(diff[big], 0.0, atol=1e-9)


# ------------------------------------------------------------------------------- features


def test_radial_basis_matches_direct_sum_single_and_batched():
    rng = np.random.default_rng(1)
    lists = [random_list(rng, n) for n in (1, 7, 23)]
    lists[1][0, :2] = 0.0  # a spot at q = 0 (φ = atan2(0, 0) = 0)
    lists[2][:3, :2] = [[2.02, 0.0], [0.0, -2.3], [1.5, 1.5]]  # beyond 2 1/Å
    batch = radial_basis(lists, preprocess=False)
    assert batch.shape == (3, N_FEATURES)
    for i, bragg in enumerate(lists):
        want = direct_features(bragg)
        single = radial_basis(bragg, preprocess=False)
        assert single.shape == (N_FEATURES,)
        assert_features_close(single, want)
        assert_features_close(batch[i], want)
    # the (m, p) layout is m-major inside each block
    tau = batch[2, :HALF].reshape(41, 13)
    assert tau[40, 3] == batch[2, feature_index(40, 3)]
    assert batch[2, HALF + 13 * 5 + 2] == batch[2, feature_index(5, 2, "arg")]


def test_spots_beyond_the_last_bin_contribute_nothing():
    inside = np.array([[0.3, 0.1, 1.0], [1.0, -0.5, 0.5]])
    outside = np.array([[2.06, 0.0, 3.0], [0.0, 2.6, 1.0]])  # |q| > 41 * 0.05
    edge = np.array([[2.025, 0.0, 1.0]])  # halfway into bin 40 only
    assert np.array_equal(
        radial_basis(inside, preprocess=False),
        radial_basis(np.vstack([inside, outside]), preprocess=False),
    )
    f = radial_basis(edge, preprocess=False)
    assert f[feature_index(40, 0)] == pytest.approx(0.5)
    assert np.count_nonzero(f[:HALF]) == 13  # the 13 angular orders of bin 40


def test_rotation_changes_only_the_phases():
    rng = np.random.default_rng(2)
    bragg = random_list(rng, 30, q_max=1.5)
    alpha = 0.7
    rot = np.array([[np.cos(alpha), -np.sin(alpha)], [np.sin(alpha), np.cos(alpha)]])
    turned = bragg.copy()
    turned[:, :2] = bragg[:, :2] @ rot.T
    f0 = radial_basis(bragg, preprocess=False)
    f1 = radial_basis(turned, preprocess=False)
    np.testing.assert_allclose(f1[:HALF], f0[:HALF], rtol=1e-10, atol=1e-12)
    p = np.tile(np.arange(13), 41)
    big = f0[:HALF] > 1e-6 * f0[:HALF].max()
    shift = np.angle(np.exp(1j * (f1[HALF:] - f0[HALF:] - p * alpha)))
    np.testing.assert_allclose(shift[big], 0.0, atol=1e-7)


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


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([[0, 0, 1.0], [0.2, np.nan, 1.0]]), r"bragg_lists\[2\] row 1 .*non-finite"),
        (np.array([[0, 0, 1.0], [0.2, 0.1, -0.5]]), r"bragg_lists\[2\] row 1 .*negative"),
        (np.empty((0, 3)), r"bragg_lists\[2\] is empty"),
        (np.ones((4, 2)), r"bragg_lists\[2\] must have shape \(n, 3\).*\(4, 2\)"),
    ],
)
def test_bad_lists_name_the_pattern_index(bad, match):
    rng = np.random.default_rng(4)
    good = [random_list(rng, 6) for _ in range(2)]
    with pytest.raises(ValueError, match=match):
        radial_basis([*good, bad], preprocess=False)


def test_on_invalid_nan_marks_rows():
    rng = np.random.default_rng(5)
    good = [random_list(rng, n, q_max=1.5) for n in (6, 12)]
    zero = np.array([[0, 0, 1.0]] + [[0.1 * k, 0.2, 0.0] for k in range(1, 6)])
    lists = [good[0], good[0][:3], np.full((6, 3), np.nan), [], zero, good[1]]
    features, valid = radial_basis(lists, on_invalid="nan")
    assert valid.tolist() == [True, False, False, False, False, True]
    assert np.isnan(features[~valid]).all()
    np.testing.assert_allclose(features[0], radial_basis(good[0]))
    np.testing.assert_allclose(features[5], radial_basis(good[1]))
    one, ok = radial_basis(good[0][:3], on_invalid="nan")
    assert ok is False and one.shape == (N_FEATURES,) and np.isnan(one).all()
    with pytest.raises(ValueError, match="on_invalid"):
        radial_basis(good, on_invalid="skip")


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
    from uedsteer.surrogates.crystal.features import crop_bragg

    bragg = np.array(
        [[0.0, 0.0, 1.0], [0.1, 0.0, 0.2], [0.5, 0.0, 0.2], [0.0, 1.2, 0.2], [1.5, 0.0, 0.2]]
    )
    out = crop_bragg(bragg, 0.16, 1.3)
    np.testing.assert_array_equal(out, bragg[[0, 2, 3]])
    with pytest.raises(ValueError, match="q_min"):
        crop_bragg(bragg, 1.0, 0.5)


def test_orient_bragg_makes_features_independent_of_in_plane_rotation():
    from uedsteer.surrogates.crystal.features import orient_bragg

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
