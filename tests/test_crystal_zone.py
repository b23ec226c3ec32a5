"""Zone-lattice and symmetry features: the 2-D cell and the pattern symmetry they read."""

import numpy as np
import pytest
from test_crystal_model import SMALL, make_dataset

from uedsteer.surrogates.crystal.predictor import CrystalPredictor
from uedsteer.surrogates.crystal.zone import (
    N_ZONE_FEATURES,
    UNDEFINED,
    ZONE_FEATURE_NAMES,
    zone_lattice_features,
)

COL = {name: i for i, name in enumerate(ZONE_FEATURE_NAMES)}


def lattice(b1, b2, intensity=None, theta=0.0, q_max=1.3):
    """Central beam plus the points h·b1 + k·b2 within q_max, rotated by theta."""
    h, k = np.meshgrid(np.arange(-10, 11), np.arange(-10, 11))
    q = h.reshape(-1, 1) * np.asarray(b1) + k.reshape(-1, 1) * np.asarray(b2)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    q = q[np.hypot(*q.T) < q_max] @ rot.T
    r = np.hypot(*q.T)
    inten = np.exp(-(r**2) / 0.5) if intensity is None else intensity(q)
    inten = np.where(r < 1e-9, 10.0, inten)
    return np.column_stack([q, inten])


def test_square_and_hexagonal_zones_read_their_cell_and_symmetry():
    square = zone_lattice_features(lattice([0.3, 0], [0, 0.3]))[0]
    assert square[COL["g1"]] == pytest.approx(0.3) and square[COL["g2_over_g1"]] == pytest.approx(1)
    assert square[COL["gamma_deg"]] == pytest.approx(90.0)
    assert square[COL["rot4"]] == pytest.approx(1.0) and square[COL["rot2"]] == pytest.approx(1)
    assert square[COL["rot3"]] < 0.2 and square[COL["rot6"]] < 0.2
    # two axial and two diagonal mirrors, each found along a vector and along a normal
    assert square[COL["mirrors_above_0.8"]] == 8
    assert square[COL["on_lattice"]] == pytest.approx(1.0)
    hexagonal = zone_lattice_features(lattice([0.3, 0], [0.15, 0.3 * np.sqrt(3) / 2]))[0]
    assert hexagonal[COL["gamma_deg"]] == pytest.approx(60.0)
    assert hexagonal[COL["rot6"]] == pytest.approx(1.0)
    assert hexagonal[COL["rot3"]] == pytest.approx(1.0)
    assert hexagonal[COL["rot4"]] < 0.2
    rect = zone_lattice_features(lattice([0.3, 0], [0, 0.45]))[0]
    assert rect[COL["g2_over_g1"]] == pytest.approx(1.5) and rect[COL["rot4"]] < 0.2
    assert rect[COL["rot2"]] == pytest.approx(1.0) and rect[COL["mirrors_above_0.8"]] == 4


def test_intensities_decide_the_symmetry_not_only_the_cell():
    """A square cell whose intensities only have 2-fold symmetry is not 4-fold."""
    two_fold = lattice([0.3, 0], [0, 0.3], intensity=lambda q: 1 + 3 * (q[:, 0] ** 2))
    f = zone_lattice_features(two_fold)[0]
    assert f[COL["gamma_deg"]] == pytest.approx(90.0) and f[COL["rot2"]] == pytest.approx(1.0)
    assert f[COL["rot4"]] < 0.9


def test_features_do_not_depend_on_in_plane_rotation_or_the_spot_order():
    base = lattice([0.27, 0.0], [0.05, 0.41])
    rng = np.random.default_rng(0)
    turned = lattice([0.27, 0.0], [0.05, 0.41], theta=1.1)[rng.permutation(len(base))]
    a, b = zone_lattice_features([base, turned])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_degenerate_lists_are_undefined_and_bad_ones_name_the_pattern():
    row = np.array([[0, 0, 5.0], [0.3, 0, 1.0], [0.6, 0, 0.5], [-0.3, 0, 1.0]])  # one line
    beam_only = np.array([[0.0, 0.0, 1.0]])
    out = zone_lattice_features([row, beam_only])
    assert out.shape == (2, N_ZONE_FEATURES) and (out[1] == UNDEFINED).all()
    # a systematic row has no 2-D lattice, but its first ring sets the length scale
    assert (np.delete(out[0], COL["q_min"]) == UNDEFINED).all()
    assert out[0, COL["q_min"]] == pytest.approx(0.3)
    bad = lattice([0.3, 0], [0, 0.3])
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"bragg_lists\[1\]"):
        zone_lattice_features([row, bad])


def small_zone_model(**kwargs) -> CrystalPredictor:
    """A predictor on the zone features with 10-tree forests, fitted in one thread."""
    return CrystalPredictor(
        system_params=SMALL,
        space_group_params=SMALL,
        lattice_params=SMALL,
        n_jobs=1,
        features="zone",
        **kwargs,
    )


def test_predictor_on_zone_features_trains_predicts_and_round_trips(tmp_path):
    rng = np.random.default_rng(11)
    lists, systems, groups, lattices = make_dataset(rng, 40)
    model = small_zone_model()
    x, valid = model.features(lists)
    assert x.shape == (len(lists), N_ZONE_FEATURES) and valid.all()
    model.fit(x, systems, groups, lattices, progress=False)
    held, held_systems, _, _ = make_dataset(rng, 10)
    pred = model.predict(held)
    assert np.mean(pred.crystal_system == held_systems) > 0.9  # chance 1/3
    loaded = CrystalPredictor.load(model.save(tmp_path / "zone"))
    assert loaded.feature_set == "zone" and loaded.n_features == N_ZONE_FEATURES
    np.testing.assert_array_equal(loaded.predict(held).crystal_system, pred.crystal_system)
    with pytest.raises(ValueError, match="features='polar'"):
        CrystalPredictor(features="polar")


def fcc(a):
    from ase.build import bulk

    return bulk("Cu", "fcc", a=a, cubic=True)


def test_scaled_lattice_target_extrapolates_to_unseen_lattice_constants(tmp_path):
    """Forests cannot predict a value they never saw; the scaled target learns the multiple
    a·g1 of the pattern's own scale instead, so an FCC crystal larger than any in training reads
    its true constant (exactly where the trees recognize the zone, and in the median over
    zones), while the paper's direct target stays inside the training range."""
    from uedsteer.sim_devices.physics.bragg import kinematic_bragg

    zones = [(0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 2), (0, 1, 2), (1, 2, 3)]
    train_a = np.linspace(3.4, 3.8, 5)
    lists = [kinematic_bragg(fcc(a), z) for a in train_a for z in zones]
    lat = np.repeat(train_a, len(zones))[:, None] * np.ones(3)
    held = [kinematic_bragg(fcc(4.6), z) for z in zones]
    reads = {}
    for target in ("direct", "scaled"):
        model = small_zone_model(lattice_target=target)
        x, valid = model.features(lists)
        assert valid.all()
        model.fit(x, ["cubic"] * len(lists), [225] * len(lists), lat, progress=False)
        reads[target] = model.predict(held).lattice[:, 0]
    assert reads["direct"].max() <= train_a.max() + 1e-9
    assert np.sum(np.abs(reads["scaled"] - 4.6) < 0.01) >= len(zones) // 2
    assert np.median(reads["scaled"]) == pytest.approx(4.6, rel=0.02)
    loaded = CrystalPredictor.load(model.save(tmp_path / "scaled"))
    assert loaded.lattice_target == "scaled"
    np.testing.assert_allclose(loaded.predict(held).lattice[:, 0], reads["scaled"])
    with pytest.raises(ValueError, match="lattice_target='scaled' needs the zone features"):
        CrystalPredictor(features="radial", lattice_target="scaled")
    with pytest.raises(ValueError, match="lattice_target='exact' is not known"):
        CrystalPredictor(features="zone", lattice_target="exact")
