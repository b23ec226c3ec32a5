"""The Bloch-wave solver against abTEM's own pipeline and against lists of the previous code.

Tolerance of "the same list": the same rows (same spots, positions within 1e-9 1/Å, same
order) and intensities within 1e-6 relative. Measured differences are ~1e-11 relative: the
Lanczos propagation is accurate to 1e-12 in the amplitudes and the structure factors differ
from abTEM's by round-off only.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal as spacegroup_crystal
from scipy.spatial.transform import Rotation

from uedsteer.sim_devices.physics.bragg import dynamical_bragg, structure_factor_for
from uedsteer.sim_devices.physics.bragg.propagation import propagate
from uedsteer.sim_devices.physics.bragg.reference import (
    abtem_dynamical_bragg,
    abtem_structure_factor,
)

# the crystal store's simulation settings (CrystalGenSettings' defaults)
STORE = {
    "voltage_kv": 300.0,
    "k_max": 2.0,
    "thickness_nm": 20.0,
    "sg_max": 0.02,
    "thermal_sigma": 0.08,
    "min_intensity": 1e-5,
}
POSITION_ATOL = 1e-9  # 1/Å
INTENSITY_RTOL = 1e-6


def assert_same_list(fast: np.ndarray, reference: np.ndarray) -> None:
    assert fast.shape == reference.shape
    np.testing.assert_allclose(fast[:, :2], reference[:, :2], rtol=0, atol=POSITION_ATOL)
    np.testing.assert_allclose(fast[:, 2], reference[:, 2], rtol=INTENSITY_RTOL, atol=0)


def _gold() -> Atoms:
    return bulk("Au", "fcc", a=4.08, cubic=True)


def _gaas() -> Atoms:  # non-centrosymmetric: complex structure factors
    return bulk("GaAs", "zincblende", a=5.65, cubic=True)


def _rutile_off_centre() -> Atoms:
    """Centrosymmetric, with the origin moved off every inversion centre."""
    rutile = spacegroup_crystal(
        ["Ti", "O"], [(0, 0, 0), (0.3053, 0.3053, 0)], spacegroup=136, cellpar=[4.59, 4.59, 2.96]
    )
    rutile.set_scaled_positions(rutile.get_scaled_positions() + [0.13, 0.27, 0.41])
    return rutile


def _triclinic() -> Atoms:  # P1, three elements: no symmetry at all
    return Atoms(
        "MgSiO",
        scaled_positions=[[0.1, 0.2, 0.3], [0.55, 0.4, 0.8], [0.3, 0.85, 0.45]],
        cell=[[4.1, 0.0, 0.0], [-1.3, 5.2, 0.0], [0.7, 0.9, 6.3]],
        pbc=True,
    )


def _rock_salt_supercell() -> Atoms:  # 32 atoms, ~800 beams along [001]: the Lanczos path
    return bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 2, 1))


CASES = [
    ("gold", _gold, [(0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 2, 3)]),
    ("GaAs", _gaas, [(0, 1, 1), (1, 1, 2)]),
    ("rutile, shifted origin", _rutile_off_centre, [(0, 0, 1), (1, 1, 1)]),
    ("triclinic", _triclinic, [(0, 0, 1), (1, -1, 2)]),
    ("rock-salt supercell", _rock_salt_supercell, [(0, 0, 1)]),
]


@pytest.mark.parametrize(("name", "make", "axes"), CASES, ids=[c[0] for c in CASES])
def test_same_lists_as_abtem(name, make, axes):
    atoms = make()
    table = structure_factor_for(atoms, STORE["k_max"], STORE["thermal_sigma"])
    reference_table = abtem_structure_factor(atoms, STORE["k_max"], STORE["thermal_sigma"])
    for uvw in axes:
        fast = dynamical_bragg(atoms, uvw, structure_factor=table, **STORE)
        reference = abtem_dynamical_bragg(atoms, uvw, structure_factor=reference_table, **STORE)
        assert len(fast) > 5
        assert_same_list(fast, reference)
    rotation = Rotation.from_euler("zxz", [0.4, 0.25, -0.7]).as_matrix()  # off any zone axis
    assert_same_list(
        dynamical_bragg(atoms, rotation=rotation, structure_factor=table, **STORE),
        abtem_dynamical_bragg(atoms, rotation=rotation, structure_factor=reference_table, **STORE),
    )


def test_other_settings_and_abtem_tables():
    """Other thickness, voltage and excitation-error limit; abTEM's table is accepted too."""
    atoms = _gaas()
    settings = {"voltage_kv": 200.0, "thickness_nm": 7.5, "sg_max": 0.05, "min_intensity": 1e-7}
    reference_table = abtem_structure_factor(atoms, 2.0)
    reference = abtem_dynamical_bragg(
        atoms, (0, 1, 1), structure_factor=reference_table, **settings
    )
    assert_same_list(dynamical_bragg(atoms, (0, 1, 1), **settings), reference)
    assert_same_list(
        dynamical_bragg(atoms, (0, 1, 1), structure_factor=reference_table, **settings), reference
    )
    zero = dynamical_bragg(atoms, (0, 1, 1), thickness_nm=0.0)
    np.testing.assert_array_equal(zero, [[0.0, 0.0, 1.0]])


# Lists of the previous implementation (abTEM BlochWaves with its full structure-factor
# table and eigendecomposition), frozen: (rows, central beam, sum of the diffracted beams,
# the four strongest spots as (qx, qy, I)) at the store's settings.
FROZEN = {
    "gold [011]": (
        _gold,
        (0, 1, 1),
        37,
        0.4726699459669711,
        0.5273300540330286,
        [
            (0.0, -0.693242, 0.0388760981727),
            (0.0, 0.693242, 0.0388760981727),
            (0.490196, -0.693242, 0.0275105248505),
            (-0.490196, -0.693242, 0.0275105248505),
        ],
    ),
    "GaAs [112]": (
        _gaas,
        (1, 1, 2),
        41,
        0.3431348206601099,
        0.6568651793398901,
        [
            (0.0, 0.306558, 0.235863901438),
            (0.0, -0.306558, 0.150264430607),
            (-0.500607, 0.0, 0.0489822603079),
            (0.500607, 0.0, 0.0489822603079),
        ],
    ),
}


@pytest.mark.parametrize("name", list(FROZEN))
def test_matches_frozen_lists_of_the_previous_code(name):
    make, uvw, rows, central, diffracted, strongest = FROZEN[name]
    bragg = dynamical_bragg(make(), uvw, **STORE)
    assert len(bragg) == rows
    assert bragg[0, 2] == pytest.approx(central, rel=INTENSITY_RTOL)
    assert bragg[1:, 2].sum() == pytest.approx(diffracted, rel=INTENSITY_RTOL)
    # symmetric reflections tie in intensity, and rounding on another machine orders ties
    # otherwise: compare the four strongest intensities, then each listed spot at its place
    top = np.sort(bragg[1:, 2])[::-1][: len(strongest)]
    assert top == pytest.approx(sorted((s[2] for s in strongest), reverse=True), rel=INTENSITY_RTOL)
    for qx, qy, intensity in strongest:
        at = np.flatnonzero(np.hypot(bragg[:, 0] - qx, bragg[:, 1] - qy) < 1e-5)
        assert len(at) == 1, f"one reflection at ({qx}, {qy})"
        assert bragg[at[0], 2] == pytest.approx(intensity, rel=INTENSITY_RTOL)


def test_table_is_real_for_centrosymmetric_crystals_and_pickles():
    assert structure_factor_for(_rutile_off_centre()).real
    assert structure_factor_for(_gold()).real
    assert not structure_factor_for(_gaas()).real
    assert not structure_factor_for(_triclinic()).real
    atoms = _rutile_off_centre()
    table = structure_factor_for(atoms, thermal_sigma=0.08)
    first = dynamical_bragg(atoms, (1, 1, 1), structure_factor=table, thermal_sigma=0.08)
    copy = pickle.loads(pickle.dumps(table))
    again = dynamical_bragg(atoms, (1, 1, 1), structure_factor=copy, thermal_sigma=0.08)
    np.testing.assert_array_equal(first, again)


def test_a_table_that_meets_phases_keeps_them(monkeypatch):
    """Safety net: an origin that is no inversion centre turns the table complex, lists right."""
    from uedsteer.sim_devices.physics.bragg import potential

    monkeypatch.setattr(potential, "_inversion_centre", lambda fractional, numbers: np.zeros(3))
    atoms = _gaas()
    table = structure_factor_for(atoms, STORE["k_max"], STORE["thermal_sigma"])
    assert table.real
    fast = dynamical_bragg(atoms, (1, 1, 2), structure_factor=table, **STORE)
    assert not table.real
    assert_same_list(fast, abtem_dynamical_bragg(atoms, (1, 1, 2), **STORE))
    assert_same_list(
        dynamical_bragg(atoms, (0, 1, 1), structure_factor=table, **STORE),
        abtem_dynamical_bragg(atoms, (0, 1, 1), **STORE),
    )


def _hermitian(n: int, rng: np.random.Generator, complex_: bool) -> np.ndarray:
    a = rng.normal(size=(n, n)) + (1j * rng.normal(size=(n, n)) if complex_ else 0.0)
    return (a + np.conj(a.T)) / (2.0 * np.sqrt(n))  # spectrum within about [-1.4, 1.4]


@pytest.mark.parametrize("complex_", [True, False])
@pytest.mark.parametrize(("n", "tau"), [(20, 5.0), (300, 10.0), (300, 60.0), (500, 2000.0)])
def test_propagate_matches_the_eigendecomposition(n, tau, complex_):
    """Direct (small), Lanczos (the usual case) and the fallback (too many Krylov vectors)."""
    matrix = _hermitian(n, np.random.default_rng(n), complex_)
    values, vectors = np.linalg.eigh(matrix)
    expected = vectors @ (np.exp(1j * tau * values) * np.conj(vectors[3]))
    got = propagate(matrix, 3, tau)
    assert np.linalg.norm(got - expected) < 1e-10
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-10)
