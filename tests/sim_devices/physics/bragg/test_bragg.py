"""Physics of the single-crystal Bragg lists (kinematic and abTEM Bloch-wave)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.core.periodic_table import DummySpecies
from pymatgen.io.ase import AseAtomsAdaptor

from uedsteer.sim_devices.physics.bragg import (
    as_atoms,
    bragg_lists_for_zone_axes,
    dynamical_bragg,
    electron_wavelength,
    kinematic_bragg,
    structure_factor_for,
    zone_axes,
    zone_axis_rotation,
)

A_AU = 4.08


@pytest.fixture(scope="module")
def gold() -> Atoms:
    return bulk("Au", "fcc", a=A_AU, cubic=True)


@pytest.fixture(scope="module")
def gold_sf(gold):
    return structure_factor_for(gold, k_max=2.0)


def _spots(bragg: np.ndarray, floor: float = 0.0) -> dict[tuple[float, float], float]:
    """Diffracted spots (central beam excluded) keyed by position rounded to 1e-6 1/Å."""
    rows = bragg[1:][bragg[1:, 2] > floor]
    return {(round(x, 6) + 0.0, round(y, 6) + 0.0): i for x, y, i in rows}


def _rotate90(key: tuple[float, float]) -> tuple[float, float]:
    return (round(-key[1], 6) + 0.0, round(key[0], 6) + 0.0)


# --- conventions ---------------------------------------------------------------------------


def test_wavelength_300kv():
    assert electron_wavelength(300.0) == pytest.approx(0.019687, abs=2e-6)
    assert electron_wavelength(200.0) > electron_wavelength(300.0)


def test_list_layout(gold, gold_sf):
    for bragg in (
        kinematic_bragg(gold, (0, 1, 1)),
        dynamical_bragg(gold, (0, 1, 1), structure_factor=gold_sf),
    ):
        assert bragg.dtype == np.float64 and bragg.ndim == 2 and bragg.shape[1] == 3
        assert tuple(bragg[0, :2]) == (0.0, 0.0)
        q = np.hypot(bragg[1:, 0], bragg[1:, 1])
        assert np.all(q > 0) and np.all(q <= 2.0 + 1e-12) and np.all(np.diff(q) >= -1e-9)
        assert np.all(bragg[1:, 2] >= 1e-7)
        assert bragg[:, 2].sum() == pytest.approx(1.0, abs=1e-3)  # flux (minus dropped spots)


def test_zone_axis_rotation_frame():
    cell = np.array([[4.1, 0.0, 0.0], [-1.3, 5.2, 0.0], [0.7, 0.9, 6.3]])  # triclinic
    recip = np.linalg.inv(cell).T
    for uvw in ([0, 0, 1], [1, -2, 3], [2, 1, 0], [4, 2, 0]):
        rot = zone_axis_rotation(cell, uvw)
        assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        axis = np.asarray(uvw) @ cell
        assert np.allclose(rot @ (axis / np.linalg.norm(axis)), [0, 0, 1], atol=1e-12)
        # +x is along the shortest zero-order-Laue-zone reciprocal vector
        grid = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
        zolz = grid[(grid @ np.asarray(uvw) == 0) & np.any(grid != 0, axis=1)]
        lengths = np.linalg.norm(zolz @ recip, axis=1)
        g_short = zolz[np.argmin(lengths)] @ recip
        assert abs(abs(rot[0] @ g_short) - lengths.min()) < 1e-9
    assert np.allclose(zone_axis_rotation(np.eye(3) * A_AU, [0, 0, 1]), np.eye(3))


# --- kinematic: FCC gold along [001] --------------------------------------------------------


def test_gold_001_allowed_reflections_only(gold):
    bragg = kinematic_bragg(gold, (0, 0, 1))
    hk = bragg[1:, :2] * A_AU
    assert np.allclose(hk, np.round(hk), atol=1e-9)
    hk = np.round(hk).astype(int)
    assert np.all(hk % 2 == 0), "FCC (hk0): h, k both even"
    q = np.hypot(bragg[1:, 0], bragg[1:, 1])
    assert np.any(np.isclose(q, 2 / A_AU)), "(200) present"
    assert np.any(np.isclose(q, 2 * np.sqrt(2) / A_AU)), "(220) present"
    assert not np.any(np.isclose(q, 1 / A_AU)), "(100) forbidden"
    assert not np.any(np.isclose(q, np.sqrt(2) / A_AU)), "(110) forbidden"
    # all 4 (200) and 4 (220) spots, strongest ring first
    assert (
        np.sum(np.isclose(q, 2 / A_AU)) == 4 and np.sum(np.isclose(q, 2 * np.sqrt(2) / A_AU)) == 4
    )
    assert bragg[1, 2] > bragg[5, 2] > 0


def test_gold_001_fourfold(gold, gold_sf):
    for bragg in (
        kinematic_bragg(gold, (0, 0, 1)),
        dynamical_bragg(gold, (0, 0, 1), structure_factor=gold_sf),
    ):
        spots = _spots(bragg)
        assert len(spots) > 20
        for key, intensity in spots.items():
            rotated = _rotate90(key)
            assert rotated in spots
            assert spots[rotated] == pytest.approx(intensity, rel=1e-6)


def test_kinematic_friedel_pairs():
    gaas = bulk("GaAs", "zincblende", a=5.65, cubic=True)  # non-centrosymmetric
    bragg = kinematic_bragg(gaas, (0, 1, 1), thickness_nm=10.0)
    spots = _spots(bragg)
    for (x, y), intensity in spots.items():
        assert spots[(round(-x, 6) + 0.0, round(-y, 6) + 0.0)] == pytest.approx(intensity, rel=1e-9)


def test_kinematic_thickness_scaling(gold):
    """Thin slab at a zone axis: I_g ∝ t² (s_g t ≪ 1), central beam 1/(1 + Σ I_g)."""
    thin = kinematic_bragg(gold, (0, 0, 1), thickness_nm=0.2)
    thinner = kinematic_bragg(gold, (0, 0, 1), thickness_nm=0.1)
    ratio = thin[1:5, 2] / thinner[1:5, 2]
    assert np.allclose(ratio, 4.0, rtol=0.02)
    assert thin[0, 2] == pytest.approx(1.0 / (1.0 + thin[1:, 2].sum() / thin[0, 2]), rel=1e-9)
    assert kinematic_bragg(gold, (0, 0, 1), thickness_nm=0.0).shape == (1, 3)


def test_debye_waller_weakens_high_orders(gold):
    # sg_max 0.05: the convention's 0.02 ends the zero-order zone before 600 (Ewald curvature)
    kw = {"sg_max": 0.05, "min_intensity": 1e-9}
    cold = _spots(kinematic_bragg(gold, (0, 0, 1), thermal_sigma=0.0, **kw))
    hot = _spots(kinematic_bragg(gold, (0, 0, 1), thermal_sigma=0.1, **kw))
    q200, q600 = (round(2 / A_AU, 6), 0.0), (round(6 / A_AU, 6), 0.0)
    damp200, damp600 = hot[q200] / cold[q200], hot[q600] / cold[q600]
    assert damp600 < damp200 < 1.0
    # exp(-2π²σ²g²) per amplitude, squared for intensity (normalisation cancels in the ratio)
    expected = np.exp(-4 * np.pi**2 * 0.01 * ((6 / A_AU) ** 2 - (2 / A_AU) ** 2))
    assert damp600 / damp200 == pytest.approx(expected, rel=1e-6)


# --- dynamical vs kinematic ----------------------------------------------------------------


@pytest.mark.parametrize("uvw", [(0, 1, 1), (1, 1, 2)])
def test_positions_coincide(gold, gold_sf, uvw):
    kin = kinematic_bragg(gold, uvw, thickness_nm=0.5)
    dyn = dynamical_bragg(gold, uvw, thickness_nm=0.5, structure_factor=gold_sf)
    strong_k = set(_spots(kin, floor=1e-4))
    strong_d = set(_spots(dyn, floor=1e-4))
    assert len(strong_k) > 10
    assert strong_k == strong_d


def test_random_orientation_positions_coincide(gold, gold_sf):
    """The `rotation` override uses the same frame in both simulators (off zone axis)."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("zxz", [0.3, 0.2, -0.5]).as_matrix()
    kin = _spots(kinematic_bragg(gold, rotation=rot, thickness_nm=0.5), floor=1e-5)
    dyn = _spots(dynamical_bragg(gold, rotation=rot, thickness_nm=0.5, structure_factor=gold_sf))
    assert len(kin) >= 2
    assert set(kin) <= set(dyn)
    by_axis = kinematic_bragg(gold, (0, 1, 1))
    by_rotation = kinematic_bragg(gold, rotation=zone_axis_rotation(gold.cell, (0, 1, 1)))
    np.testing.assert_array_equal(by_axis, by_rotation)


def test_thin_limit_intensities_agree(gold, gold_sf):
    for thickness, rtol in ((0.1, 0.02), (1.0, 0.5)):
        kin = _spots(kinematic_bragg(gold, (0, 1, 1), thickness_nm=thickness))
        dyn = _spots(
            dynamical_bragg(gold, (0, 1, 1), thickness_nm=thickness, structure_factor=gold_sf)
        )
        strong = [k for k, v in dyn.items() if v > 1e-3 * max(dyn.values())]
        assert len(strong) >= 8
        ratio = np.array([kin[k] / dyn[k] for k in strong])
        assert np.all(np.abs(ratio - 1.0) < rtol), (thickness, ratio)


def test_pendellosung(gold, gold_sf):
    """Dynamical intensities oscillate with thickness; kinematic ones only grow (t²·sinc²)."""
    thicknesses = [2.0, 5.0, 10.0, 20.0, 40.0]
    dyn = [
        dynamical_bragg(gold, (0, 0, 1), thickness_nm=t, structure_factor=gold_sf)
        for t in thicknesses
    ]
    central = np.array([b[0, 2] for b in dyn])
    i200 = np.array([_spots(b)[(round(2 / A_AU, 6), 0.0)] for b in dyn])
    assert np.any(np.diff(central) > 0.05) and np.any(np.diff(central) < -0.02)
    assert np.any(np.diff(i200) < 0), "the (200) beam loses intensity to others as t grows"
    scaled = i200 / np.square(thicknesses)
    assert scaled.max() / scaled.min() > 10.0, "far from the kinematic t² law"
    for b in dyn:
        assert b[:, 2].sum() == pytest.approx(1.0, abs=1e-3)


# --- zone axes -----------------------------------------------------------------------------


def test_zone_axes_cubic(gold):
    assert len(zone_axes(gold, n=30, max_index=4)) == 22  # the m-3m triangle up to index 4
    axes = zone_axes(gold, n=30, max_index=6)
    assert axes.dtype == np.int64 and axes.shape == (30, 3)
    assert axes[:3].tolist() == [[0, 0, 1], [0, 1, 1], [1, 1, 1]]
    invariants = {tuple(sorted(np.abs(a))) for a in axes}  # |u|,|v|,|w| multiset: m-3m orbit
    assert len(invariants) == len(axes), "one representative per orbit"
    lengths = np.linalg.norm(axes @ np.asarray(gold.cell), axis=1)
    assert np.all(np.diff(lengths) >= -1e-9), "densest zones first"
    assert zone_axes(gold, n=100, max_index=1).tolist() == [[0, 0, 1], [0, 1, 1], [1, 1, 1]]
    assert len(zone_axes(gold, n=5)) == 5


def test_zone_axes_orthorhombic():
    ortho = Atoms("Cu", positions=[[0, 0, 0]], cell=[3.0, 4.0, 5.0], pbc=True)
    axes = zone_axes(ortho, n=100, max_index=1)
    assert len(axes) == 7  # 13 directions ±: mmm keeps every |u|,|v|,|w| pattern distinct
    listed = [tuple(a) for a in axes]
    assert {(1, 0, 0), (0, 1, 0), (0, 0, 1)} <= set(listed)
    assert listed[:3] == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]  # by period: 3, 4, 5 Å


def test_bragg_lists_for_zone_axes(gold, gold_sf):
    axes = zone_axes(gold, n=3)
    lists = bragg_lists_for_zone_axes(gold, axes, method="dynamical", thickness_nm=10.0)
    assert len(lists) == 3
    for uvw, bragg in zip(axes, lists, strict=True):
        single = dynamical_bragg(gold, uvw, thickness_nm=10.0, structure_factor=gold_sf)
        np.testing.assert_allclose(bragg, single, rtol=1e-9, atol=1e-12)
    kin = bragg_lists_for_zone_axes(gold, axes, method="kinematic")
    np.testing.assert_array_equal(kin[1], kinematic_bragg(gold, axes[1]))


def test_coincident_holz_spots_are_merged():
    """A long axis along the beam puts first-Laue-zone spots above zero-order ones."""
    cell = Atoms("AuCu", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[3, 4, 20], pbc=True)
    for bragg in (kinematic_bragg(cell, (0, 0, 1)), dynamical_bragg(cell, (0, 0, 1))):
        positions = np.round(bragg[:, :2], 8)
        assert len(np.unique(positions, axis=0)) == len(bragg)
        assert bragg[:, 2].sum() == pytest.approx(1.0, abs=1e-3)


# --- inputs --------------------------------------------------------------------------------


def test_pymatgen_structure_gives_same_lists(gold, gold_sf):
    structure = AseAtomsAdaptor.get_structure(gold)
    assert isinstance(as_atoms(structure), Atoms)
    np.testing.assert_allclose(
        kinematic_bragg(structure, (0, 1, 1)), kinematic_bragg(gold, (0, 1, 1)), atol=1e-12
    )
    np.testing.assert_allclose(
        dynamical_bragg(structure, (0, 1, 1)),
        dynamical_bragg(gold, (0, 1, 1), structure_factor=gold_sf),
        atol=1e-10,
    )
    assert zone_axes(structure, n=4).tolist() == zone_axes(gold, n=4).tolist()


@pytest.mark.parametrize(
    ("crystal", "match"),
    [
        (Atoms(), "empty"),
        (Atoms("Au", positions=[[0, 0, 0]]), "zero-volume"),
        (Atoms("X", positions=[[0, 0, 0]], cell=[3, 3, 3], pbc=True), "'X'"),
        (Atoms("Au", positions=[[np.nan, 0, 0]], cell=[3, 3, 3]), "NaN"),
        (Structure(Lattice.cubic(4.0), [DummySpecies("X")], [[0, 0, 0]]), "X"),
        ("Au", "ase.Atoms or a pymatgen Structure"),
    ],
)
def test_bad_crystals(crystal, match):
    with pytest.raises(ValueError, match=match):
        kinematic_bragg(crystal)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"zone_axis": (0, 0.5, 1)}, "zone_axis"),
        ({"zone_axis": (0, 0, 0)}, "zone_axis"),
        ({"zone_axis": (1, 0)}, "zone_axis"),
        ({"thickness_nm": -1.0}, "thickness_nm"),
        ({"k_max": 0.0}, "k_max"),
        ({"k_max": -2.0}, "k_max"),
        ({"sg_max": 0.0}, "sg_max"),
        ({"voltage_kv": -300.0}, "voltage_kv"),
        ({"thermal_sigma": -0.1}, "thermal_sigma"),
        ({"thermal_sigma": {"Cu": 0.1}}, "thermal_sigma"),
        ({"rotation": np.diag([1.0, 1.0, -1.0])}, "rotation"),
        ({"rotation": np.ones((3, 3))}, "rotation"),
    ],
)
def test_bad_parameters(gold, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kinematic_bragg(gold, **kwargs)


def test_bad_parameters_dynamical(gold, gold_sf):
    with pytest.raises(ValueError, match="thickness_nm"):
        dynamical_bragg(gold, thickness_nm=-5.0, structure_factor=gold_sf)
    with pytest.raises(ValueError, match="k_max"):
        dynamical_bragg(gold, k_max=0.0, structure_factor=gold_sf)
    with pytest.raises(ValueError, match="structure_factor"):
        dynamical_bragg(gold, k_max=3.0, structure_factor=gold_sf)  # table too small
    other = bulk("Cu", "fcc", a=3.61, cubic=True)
    with pytest.raises(ValueError, match="structure_factor"):
        dynamical_bragg(other, structure_factor=gold_sf)
    with pytest.raises(ValueError, match="method"):
        bragg_lists_for_zone_axes(gold, [[0, 0, 1]], method="multislice")
    with pytest.raises(ValueError, match=r"zone_axes\[1\]"):
        bragg_lists_for_zone_axes(gold, [[0, 0, 1], [0, 0, 0]], method="kinematic")
    with pytest.raises(ValueError, match="max_index"):
        zone_axes(gold, max_index=0)
    with pytest.raises(ValueError, match="n="):
        zone_axes(gold, n=0)
