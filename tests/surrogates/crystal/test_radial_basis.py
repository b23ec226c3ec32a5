"""Radial-basis features of Bragg lists (Gleason et al. 2024 eqs. 1-2)."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from uedsteer.surrogates.crystal.features import N_FEATURES, feature_index, radial_basis

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
