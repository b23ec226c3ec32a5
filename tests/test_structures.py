import numpy as np
import pytest
from ase import Atoms

from uedsteer.sim_devices.materials import MOTE2
from uedsteer.sim_devices.physics import (
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    path_cell,
    random_strain,
    rotate_in_plane,
    supercell,
)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: add_vacancies(MOTE2.cell(), {"Mo": -0.1}, np.random.default_rng()), "Mo vacancy"),
        (lambda: add_vacancies(MOTE2.cell(), {"Te": 1.2}, np.random.default_rng()), "Te vacancy"),
        (lambda: add_vacancies(MOTE2.cell(), {"Xx": 0.1}, np.random.default_rng()), "element"),
        (lambda: add_thermal_displacements(MOTE2.cell(), -1, np.random.default_rng()), "rms"),
        (lambda: apply_strain(MOTE2.cell(), [[0.1, 0.2], [0.0, 0.0]]), "symmetric"),
        (lambda: apply_strain(MOTE2.cell(), [[0.9, 0.0], [0.0, 0.0]]), "exceed"),
        (lambda: degrade(MOTE2.cell(), 0.5, 1.0, np.random.default_rng()), "vacant_fraction"),
        (lambda: path_cell(["Mo"], ([1, 1, 1], [[0, 0, 0]]), ([1, 1, 1], [[0, 0, 0]]), 2), "x="),
        (lambda: supercell(MOTE2.cell(), (0, 3)), "size="),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_path_cell_interpolates_matched_cells():
    a = (np.array([3.0, 4.0, 10.0]), np.array([[0.0, 0.0, 0.5], [0.5, 0.5, 0.5]]))
    b = (np.array([3.2, 4.4, 10.0]), np.array([[0.0, 0.0, 0.5], [0.7, 0.5, 0.5]]))
    mid = path_cell(["W", "Se"], a, b, 0.5)
    assert np.allclose(np.diag(mid.cell), [3.1, 4.2, 10.0])
    assert np.allclose(mid.get_scaled_positions(wrap=False)[1], [0.6, 0.5, 0.5])
    assert mid.info["path_fraction"] == 0.5 and mid.get_chemical_symbols() == ["W", "Se"]
    sc = supercell(mid, (3, 2))
    assert len(sc) == 12 and sc.arrays["cell_index"].max(axis=0).tolist() == [2, 1]


def test_vacancies_remove_requested_fractions(rng):
    sc = MOTE2.supercell("2H", (20, 12))
    out = add_vacancies(sc, {"Mo": 0.1, "Te": 0.2}, rng)
    sym = np.array(out.get_chemical_symbols())
    assert (sym == "Mo").sum() == round(0.9 * 480) and (sym == "Te").sum() == round(0.8 * 960)
    assert len(sc) == 1440  # input untouched


def test_thermal_rms(rng):
    sc = MOTE2.supercell("2H", (20, 12))
    out = add_thermal_displacements(sc, 0.1, rng)
    assert np.std(out.positions - sc.positions) == pytest.approx(0.1, rel=0.05)


def test_strain_and_rotation_transform_cell(rng):
    sc = MOTE2.supercell("2H", (4, 3))
    eps = random_strain(rng, 0.1, 0.1)
    assert np.allclose(eps, eps.T) and np.abs(eps).max() <= 0.1
    out = apply_strain(sc, eps)
    assert np.allclose(out.cell[:, :2][:2], sc.cell[:2, :2] @ (np.eye(2) + eps).T)
    rot = rotate_in_plane(sc, 90)
    assert np.allclose(rot.positions[:, 0], -sc.positions[:, 1], atol=1e-9)


def test_phonon_displacement_amplitude_and_periodicity(rng):
    sc = MOTE2.supercell("2H", (8, 8))
    out = MOTE2.add_phonon(sc, "M:10", 0.2, rng)
    u = out.positions - sc.positions
    assert np.linalg.norm(u, axis=1).max() == pytest.approx(0.2)
    # M = (½, ½): displacement pattern flips sign from one cell to the next along a
    ci = sc.arrays["cell_index"]
    first = (ci[:, 0] == 0) & (ci[:, 1] == 0)
    next_a = (ci[:, 0] == 1) & (ci[:, 1] == 0)
    two_a = (ci[:, 0] == 2) & (ci[:, 1] == 0)
    assert np.allclose(u[next_a], -u[first], atol=1e-9)
    assert np.allclose(u[two_a], u[first], atol=1e-9)


def test_degrade_removes_most_sites(rng):
    sc = MOTE2.supercell("2H", (20, 12))
    out = degrade(sc, 0.95, 1.0, rng)
    assert len(out) <= 0.06 * len(sc)


def test_validate_rejects_empty_nan_unknown():
    from uedsteer.sim_devices.physics import kinematic_intensity

    with pytest.raises(ValueError, match="empty"):
        kinematic_intensity(Atoms())
    bad = MOTE2.cell()
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kinematic_intensity(bad)
    with pytest.raises(ValueError, match="Og"):
        kinematic_intensity(Atoms("Og", positions=[[0, 0, 0]]))
