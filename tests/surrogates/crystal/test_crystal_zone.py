"""Zone-lattice and symmetry features: the 2-D cell and the pattern symmetry they read."""

import numpy as np
import pytest
from test_crystal_predictor import SMALL, make_dataset

from uedsteer.surrogates.crystal.predictor import CrystalPredictor
from uedsteer.surrogates.crystal.zone import (
    N_ZONE_FEATURES,
    RING_CENTRES,
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


def test_the_cell_of_measured_spots_is_refined_over_every_spot_it_indexes():
    """Spots with a detector's position error: a cell read off the two shortest spots carries
    their error in full; refined over all indexed spots, a square net stays square within
    the material aggregate's tolerances (2 % in length, 1° in angle)."""
    from uedsteer.surrogates.crystal.bragg_lists import jitter_positions

    exact = lattice([0.45, 0], [0, 0.45], q_max=2.0)
    moved = jitter_positions([exact] * 200, 0.004, seed=7)
    f = zone_lattice_features(moved)
    ratio_error = np.abs(f[:, COL["g2_over_g1"]] - 1.0)
    angle_error = np.abs(f[:, COL["gamma_deg"]] - 90.0)
    # one spot at |g| = 0.45 moved by 0.004 rms per coordinate: ~1.3 % in the ratio and
    # ~0.7° in the angle; the refined cell is several times closer
    assert np.sqrt(np.mean(ratio_error**2)) < 0.004 and ratio_error.max() < 0.02
    assert np.sqrt(np.mean(angle_error**2)) < 0.2 and angle_error.max() < 1.0
    assert np.abs(f[:, COL["g1"]] - 0.45).max() < 0.005
    # an exact net is read exactly
    g = zone_lattice_features(exact)[0]
    # the rings are measured in units of the refined first ring, so one spot's error does not
    # move the whole profile: (|q| / q_min)² = 16 sits in its bin on every pattern
    rings = [COL[f"ring_{c:g}"] for c in RING_CENTRES]
    assert np.abs(f[:, COL["q_min"]] - 0.45).max() < 0.002
    np.testing.assert_allclose(f[:, rings], np.tile(g[rings], (len(f), 1)), atol=0.01)
    assert g[COL["g2_over_g1"]] == pytest.approx(1.0, abs=1e-12)
    assert g[COL["gamma_deg"]] == pytest.approx(90.0, abs=1e-9)


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
    # a systematic row has no 2-D lattice, but its first ring sets the length scale and the
    # ring profile: 2 of 2.5 at (q/q_min)² = 1, 0.5 at 4
    assert (out[0, : COL["q_min"]] == UNDEFINED).all()
    assert out[0, COL["q_min"]] == pytest.approx(0.3)
    ring = out[0, COL["q_min"] + 1 :]
    assert ring.sum() == pytest.approx(1.0)
    assert ring[RING_CENTRES.index(1.0)] == pytest.approx(0.8)
    assert ring[RING_CENTRES.index(4.0)] == pytest.approx(0.2)
    bad = lattice([0.3, 0], [0, 0.3])
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"bragg_lists\[1\]"):
        zone_lattice_features([row, bad])


def test_ring_profile_reads_the_allowed_rings_at_any_lattice_constant():
    """[001] zones of primitive and face-centred cubic, kinematic spots with equal intensity.

    In units of the first ring, primitive cubic (hk0) has rings at h² + k² = 1, 2, 4, 5, 8, …;
    face-centred cubic keeps only h, k even: (200), (220), (400), … at N/4 = 1, 2, 4, 5, 8 — the
    same sequence (the [001] ambiguity the lattice regressor must settle). Along [011] they
    differ: FCC's (111), (200), (022) sit at N/3 = 1, 4/3, 8/3, a primitive cell's (100),
    (011), (111) at 1, 2, 3.
    """

    def pattern(a, allowed, axis):
        h, k, l_ = np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij")
        hkl = np.column_stack([h.ravel(), k.ravel(), l_.ravel()])
        hkl = hkl[(hkl @ np.asarray(axis) == 0) & allowed(hkl)]
        u = np.asarray(axis, float) / np.linalg.norm(axis)
        e1 = np.cross(u, [0, 0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0, 0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(u, e1)
        g = hkl / a
        q = np.column_stack([g @ e1, g @ e2])
        q = q[np.hypot(*q.T) < 1.6]
        return np.column_stack([q, np.ones(len(q))])

    def fcc(hkl):
        return (hkl % 2 == hkl[:, :1] % 2).all(axis=1)

    def primitive(hkl):
        return np.ones(len(hkl), bool)

    ring = slice(COL["q_min"] + 1, None)

    def rings_present(f):
        return {c for c, share in zip(RING_CENTRES, f[ring], strict=True) if share > 0}

    fcc011 = zone_lattice_features([pattern(a, fcc, [0, 1, 1]) for a in (3.6, 4.08, 5.4)])
    # the same rings at any lattice constant (shares of a total that counts more rings within
    # the |q| cut for a larger cell, so compared relative to the first ring)
    small, large = fcc011[0, ring][:8], fcc011[2, ring][:8]
    np.testing.assert_allclose(small / small[0], large / large[0], atol=1e-9)
    assert {1.0, 1.5, 2.5} <= rings_present(fcc011[1])  # N/3 = 1, 4/3, 8/3 → 1, 1.5, 2.5 bins
    assert 2.0 not in rings_present(fcc011[1]) and 3.0 not in rings_present(fcc011[1])
    p011 = zone_lattice_features(pattern(4.08, primitive, [0, 1, 1]))[0]
    assert {1.0, 2.0, 3.0} <= rings_present(p011)
    assert rings_present(p011) != rings_present(fcc011[1])
    p001 = zone_lattice_features(pattern(2.04, primitive, [0, 0, 1]))[0]
    f001 = zone_lattice_features(pattern(4.08, fcc, [0, 0, 1]))[0]
    np.testing.assert_allclose(p001[ring], f001[ring], atol=1e-9)


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
