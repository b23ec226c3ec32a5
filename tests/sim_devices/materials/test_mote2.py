"""The MoTe2 material: its cells along the 2H → 1T' path, phases, classes, phonon table and
response defaults are those the simulator used before materials were modules."""

import hashlib
from importlib import resources

import numpy as np
import pytest

from uedsteer.sim_devices.materials import (
    DEFAULT_MATERIAL,
    INTERPOLATED,
    MOTE2,
    default_material,
    get_material,
    mote2,
)
from uedsteer.sim_devices.response import ResponseParams

# Positions and cell lengths the simulator built before materials were modules (Å).
BEFORE = {
    ("2H", 0.0): (
        [3.5128, 6.084348076827951, 15.4],
        [
            [0.0, 4.056232051218634, 2.020788],
            [0.0, 4.056232051218634, 5.629008000000001],
            [1.7564, 1.0140580128046586, 2.020788],
            [1.7564, 1.0140580128046586, 5.629008000000001],
            [0.0, 2.028116025609317, 3.824898],
            [1.7564, 5.070290064023293, 3.824898],
        ],
    ),
    ("2H", 0.3): (
        [3.51757, 6.140883653779566, 15.399999999999999],
        [
            [0.005381882100000001, 4.043247863942055, 1.9422941999999996],
            [0.5276355, 3.8037718240956133, 5.707501799999999],
            [1.758785, 0.9538307065620932, 2.1214577999999995],
            [2.2918023820999998, 0.7523237503469704, 5.528384399999999],
            [0.005381882100000001, 2.1532169277878697, 3.855158999999999],
            [1.758785, 4.977384756626478, 3.7946369999999994],
        ],
    ),
    ("1T'", 0.0): (
        [3.5287, 6.2728, 15.4],
        [
            [0.01799637, 4.009322848, 1.759142],
            [1.76435, 3.193921576, 5.8906540000000005],
            [1.76435, 0.808313008, 2.356354],
            [3.5466963700000007, 0.122194144, 5.293596],
            [0.01799637, 2.452727528, 3.9257679999999997],
            [1.76435, 4.750579624, 3.724028],
        ],
    ),
}
PHONON_SHA256 = "59d5e6d9a0c4ca105a67532835eb4c13d3a706465e2226d1f6d439895949fb03"


def test_mote2_is_the_registered_default():
    assert DEFAULT_MATERIAL == "MoTe2"
    assert get_material("MoTe2") is MOTE2 is default_material() is get_material()
    assert MOTE2.phases == ("2H", "1T'")
    assert MOTE2.symbols == ("Te", "Te", "Te", "Te", "Mo", "Mo")


def test_classes_and_damage_classes_in_seed_order():
    assert MOTE2.class_names == (
        "ref_2H",
        "vacancy_2H",
        "deform_2H",
        "phonon_2H",
        "vacancy_1Tp",
        "deform_1Tp",
        "phonon_1Tp",
        "degraded",
    )
    assert MOTE2.damage_classes == (1, 4, 7)
    assert MOTE2.labels == (*MOTE2.class_names, INTERPOLATED)
    assert MOTE2.reference_class == "ref_2H"


@pytest.mark.parametrize(("phase", "x"), list(BEFORE))
def test_cells_along_the_path_are_those_of_before(phase, x):
    lengths, positions = BEFORE[phase, x]
    atoms = MOTE2.cell(phase, x)
    np.testing.assert_allclose(np.diag(atoms.cell), lengths, rtol=0, atol=1e-12)
    np.testing.assert_allclose(atoms.positions, positions, rtol=0, atol=1e-12)
    assert atoms.arrays["basis_index"].tolist() == list(range(6))
    assert atoms.info["phase"] == phase


def test_supercell_tiles_the_cell():
    unit = MOTE2.cell("2H", 0.25)
    sc = MOTE2.supercell("2H", (7, 5), x=0.25)
    assert len(sc) == 7 * 5 * 6 and sc.info["size"] == (7, 5)
    ci, bi = sc.arrays["cell_index"], sc.arrays["basis_index"]
    expected = unit.positions[bi] + ci[:, :1] * unit.cell[0] + ci[:, 1:] * unit.cell[1]
    np.testing.assert_allclose(sc.positions, expected, rtol=0, atol=1e-9)


def test_phonon_table_is_the_shipped_file():
    data = resources.files(MOTE2.phonon_package).joinpath(MOTE2.phonon_table).read_bytes()
    assert hashlib.sha256(data).hexdigest() == PHONON_SHA256
    for phase in MOTE2.phases:
        table = MOTE2.modes(phase)
        assert table.phase == phase and table.frequencies_cm1.shape == (3, 18)
    assert MOTE2.modes("1Tp") is MOTE2.modes("1T'")
    assert len(MOTE2.mode_ids()) == 2 * 51


def test_response_defaults_are_the_materials():
    assert ResponseParams() == ResponseParams.for_material(MOTE2)
    assert ResponseParams().model_dump() == {**ResponseParams().model_dump(), **MOTE2.response}
    assert ResponseParams.random(100) == ResponseParams.random(100, material="MoTe2")


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase="):
        MOTE2.cell("3R")
    with pytest.raises(ValueError, match="x="):
        MOTE2.cell("2H", x=1.5)
    with pytest.raises(ValueError, match="size="):
        MOTE2.supercell("2H", (0, 3))


def test_2h_cell_is_hexagonal_trigonal_prismatic():
    cell = MOTE2.cell("2H")
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
    h, t = MOTE2.cell("2H"), MOTE2.cell("1T'")
    mid = MOTE2.cell("2H", 0.5)
    assert np.allclose(mid.cell, 0.5 * (h.cell + t.cell))
    frac = lambda a: a.get_scaled_positions(wrap=False)  # noqa: E731
    assert np.allclose(frac(mid), 0.5 * (frac(h) + frac(t)))
    assert np.allclose(MOTE2.cell("2H", 1.0).positions, t.positions)
    assert np.allclose(MOTE2.cell("1Tp", 1.0).positions, h.positions)
    assert np.allclose(np.diag(t.cell), mote2.CELL_1TP)
    assert np.allclose(t.get_scaled_positions(wrap=True), np.mod(mote2.FRAC_1TP, 1.0))
    # uniform glide of the top Te layer: both top-Te atoms move by the same vector
    glide = t.positions - h.positions
    assert np.allclose(glide[1, :2], glide[3, :2], atol=0.15)


def test_supercell_size_and_indices():
    sc = MOTE2.supercell("2H", (51, 30))
    assert len(sc) == 51 * 30 * 6 == 9180
    assert sc.arrays["cell_index"].max(axis=0).tolist() == [50, 29]
    assert sorted(set(sc.get_chemical_symbols())) == ["Mo", "Te"]


def test_phonon_table_is_physical():
    for phase in ("2H", "1T'"):
        table = MOTE2.modes(phase)
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
    f2h = MOTE2.modes("2H").frequencies_cm1
    assert 50 < f2h[1:].min() < 90 and 200 < f2h[1:].max() < 270


def test_phonon_rejects_unknown_mode_and_mixed_phase(rng):
    with pytest.raises(ValueError, match="mode="):
        MOTE2.add_phonon(MOTE2.supercell("2H", (2, 2)), "X:3", 0.1, rng)
    with pytest.raises(ValueError, match="pure"):
        MOTE2.add_phonon(MOTE2.supercell("2H", (2, 2), x=0.5), "M:3", 0.1, rng)
