import numpy as np
import pytest
from ase import Atoms

from uedsteer.sim_devices.physics import (
    add_phonon_displacement,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    load_modes,
    mote2_cell,
    mote2_supercell,
    random_strain,
    rotate_in_plane,
)
from uedsteer.sim_devices.physics.structures import CELL_1TP, FRAC_1TP


def test_2h_cell_is_hexagonal_trigonal_prismatic():
    cell = mote2_cell("2H")
    a, b = cell.cell[0, 0], cell.cell[1, 1]
    assert b / a == pytest.approx(np.sqrt(3))
    pos = cell.positions
    # both Te layers sit on the same in-plane site (trigonal prism), Te-Te height 3.6 Å
    assert np.allclose(pos[0, :2], pos[1, :2]) and np.allclose(pos[2, :2], pos[3, :2])
    assert pos[1, 2] - pos[0, 2] == pytest.approx(3.608, abs=0.01)
    # Mo-Te bond 2.7 Å (MoTe2)
    d = np.linalg.norm(pos[4] - pos[0] - [0, 0, 0], axis=-1)
    assert 2.6 < d < 2.8


def test_path_interpolates_cell_and_positions():
    h, t = mote2_cell("2H"), mote2_cell("1T'")
    mid = mote2_cell("2H", 0.5)
    assert np.allclose(mid.cell, 0.5 * (h.cell + t.cell))
    frac = lambda a: a.get_scaled_positions(wrap=False)  # noqa: E731
    assert np.allclose(frac(mid), 0.5 * (frac(h) + frac(t)))
    assert np.allclose(mote2_cell("2H", 1.0).positions, t.positions)
    assert np.allclose(mote2_cell("1Tp", 1.0).positions, h.positions)
    assert np.allclose(np.diag(t.cell), CELL_1TP)
    assert np.allclose(t.get_scaled_positions(wrap=True), np.mod(FRAC_1TP, 1.0))
    # uniform glide of the top Te layer: both top-Te atoms move by the same vector
    glide = t.positions - h.positions
    assert np.allclose(glide[1, :2], glide[3, :2], atol=0.15)


def test_supercell_size_and_indices():
    sc = mote2_supercell("2H", (51, 30))
    assert len(sc) == 51 * 30 * 6 == 9180
    assert sc.arrays["cell_index"].max(axis=0).tolist() == [50, 29]
    assert sorted(set(sc.get_chemical_symbols())) == ["Mo", "Te"]


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: mote2_cell("3R"), "phase="),
        (lambda: mote2_cell("2H", x=1.5), "x="),
        (lambda: mote2_cell("2H", x=-0.1), "x="),
        (lambda: mote2_supercell("2H", (0, 3)), "size="),
        (lambda: add_vacancies(mote2_cell(), -0.1, 0.0, np.random.default_rng()), "mo_fraction"),
        (lambda: add_vacancies(mote2_cell(), 0.0, 1.2, np.random.default_rng()), "te_fraction"),
        (lambda: add_thermal_displacements(mote2_cell(), -1, np.random.default_rng()), "rms"),
        (lambda: apply_strain(mote2_cell(), [[0.1, 0.2], [0.0, 0.0]]), "symmetric"),
        (lambda: apply_strain(mote2_cell(), [[0.9, 0.0], [0.0, 0.0]]), "exceed"),
        (lambda: degrade(mote2_cell(), 0.5, 1.0, np.random.default_rng()), "vacant_fraction"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_vacancies_remove_requested_fractions(rng):
    sc = mote2_supercell("2H", (20, 12))
    out = add_vacancies(sc, 0.1, 0.2, rng)
    sym = np.array(out.get_chemical_symbols())
    assert (sym == "Mo").sum() == round(0.9 * 480) and (sym == "Te").sum() == round(0.8 * 960)
    assert len(sc) == 1440  # input untouched


def test_thermal_rms(rng):
    sc = mote2_supercell("2H", (20, 12))
    out = add_thermal_displacements(sc, 0.1, rng)
    assert np.std(out.positions - sc.positions) == pytest.approx(0.1, rel=0.05)


def test_strain_and_rotation_transform_cell(rng):
    sc = mote2_supercell("2H", (4, 3))
    eps = random_strain(rng, 0.1, 0.1)
    assert np.allclose(eps, eps.T) and np.abs(eps).max() <= 0.1
    out = apply_strain(sc, eps)
    assert np.allclose(out.cell[:, :2][:2], sc.cell[:2, :2] @ (np.eye(2) + eps).T)
    rot = rotate_in_plane(sc, 90)
    assert np.allclose(rot.positions[:, 0], -sc.positions[:, 1], atol=1e-9)


def test_phonon_displacement_amplitude_and_periodicity(rng):
    sc = mote2_supercell("2H", (8, 8))
    out = add_phonon_displacement(sc, "M:10", 0.2, rng)
    u = out.positions - sc.positions
    assert np.linalg.norm(u, axis=1).max() == pytest.approx(0.2)
    # M = (½, ½): displacement pattern flips sign from one cell to the next along a
    ci = sc.arrays["cell_index"]
    first = (ci[:, 0] == 0) & (ci[:, 1] == 0)
    next_a = (ci[:, 0] == 1) & (ci[:, 1] == 0)
    two_a = (ci[:, 0] == 2) & (ci[:, 1] == 0)
    assert np.allclose(u[next_a], -u[first], atol=1e-9)
    assert np.allclose(u[two_a], u[first], atol=1e-9)


def test_phonon_table_is_physical():
    for phase in ("2H", "1T'"):
        table = load_modes(phase)
        assert table.qlabels == ("Gamma", "M", "K")
        f = table.frequencies_cm1
        assert f[1:].min() > 10, "no soft or imaginary modes at M and K"
        assert 150 < f.max() < 320
        assert np.allclose(f[0, :3], 0, atol=2.0), "three acoustic modes at Γ"
        for iq in range(3):
            e = table.eigenvectors[iq].reshape(18, 18)
            assert np.allclose(e.conj() @ e.T, np.eye(18), atol=1e-6)
        assert table.settings["command"] == "uedsteer phonons"
    # 2H M- and K-point optical range as computed by phonopy + CHGNet (~70–260 cm⁻¹)
    f2h = load_modes("2H").frequencies_cm1
    assert 50 < f2h[1:].min() < 90 and 200 < f2h[1:].max() < 270


def test_phonon_rejects_unknown_mode_and_mixed_phase(rng):
    with pytest.raises(ValueError, match="mode="):
        add_phonon_displacement(mote2_supercell("2H", (2, 2)), "X:3", 0.1, rng)
    with pytest.raises(ValueError, match="pure"):
        add_phonon_displacement(mote2_supercell("2H", (2, 2), x=0.5), "M:3", 0.1, rng)


def test_degrade_removes_most_sites(rng):
    sc = mote2_supercell("2H", (20, 12))
    out = degrade(sc, 0.95, 1.0, rng)
    assert len(out) <= 0.06 * len(sc)


def test_validate_rejects_empty_nan_unknown():
    from uedsteer.sim_devices.physics import kinematic_intensity

    with pytest.raises(ValueError, match="empty"):
        kinematic_intensity(Atoms())
    bad = mote2_cell()
    bad.positions[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kinematic_intensity(bad)
    with pytest.raises(ValueError, match="Og"):
        kinematic_intensity(Atoms("Og", positions=[[0, 0, 0]]))
