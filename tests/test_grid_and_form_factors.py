import numpy as np
import pytest

from uedsteer.sim_devices.physics import ReciprocalGrid, electron_form_factor, known_elements


def test_seed_grid_geometry(grid):
    assert grid.shape == (261, 261)
    assert grid.axis[0] == pytest.approx(-1.3) and grid.axis[-1] == pytest.approx(1.3)
    c = grid.n // 2
    assert grid.q[c, c] == 0.0
    # rows follow qy, columns follow qx
    assert grid.qx[0, -1] == pytest.approx(1.3) and grid.qy[-1, 0] == pytest.approx(1.3)
    assert grid.index_of(0.3, -0.2) == (c - 20, c + 30)


@pytest.mark.parametrize("n", [260, 0, 1, -5, 2.5, True])
def test_grid_rejects_bad_size(n):
    with pytest.raises(ValueError, match="n="):
        ReciprocalGrid(n=n)


@pytest.mark.parametrize("dq", [0.0, -0.01, float("nan")])
def test_grid_rejects_bad_spacing(dq):
    with pytest.raises(ValueError, match="dq="):
        ReciprocalGrid(dq=dq)


def test_form_factors_cover_all_elements():
    elems = known_elements()
    assert len(elems) == 103 and elems[0] == "H" and "Mo" in elems and "Te" in elems


def test_form_factor_shape_and_ordering():
    g = np.linspace(0, 2, 50)
    for sym in ("Mo", "Te", "Au", "O"):
        f = electron_form_factor(sym, g)
        assert f.shape == g.shape
        assert np.all(np.diff(f) < 0), f"{sym}: f(g) must fall with g"
        assert np.all(f > 0)
    # heavier atom scatters more at high angle
    assert electron_form_factor("Te", 1.0) > electron_form_factor("Mo", 1.0)


@pytest.mark.parametrize("sym,z", [("Mo", 42), ("Te", 52), ("Au", 79), ("C", 6)])
def test_mott_bethe_high_angle_limit(sym, z):
    # Mott-Bethe: f_e(g) -> (2 m e^2 / h^2 4πε0) Z / (4π² ... ) = 0.0957 Z / g² (Å, g in 1/Å)
    g = 30.0
    assert electron_form_factor(sym, g) * g**2 == pytest.approx(0.09573 * z, rel=0.03)


def test_form_factor_bad_input():
    with pytest.raises(ValueError, match="symbol='Xx'"):
        electron_form_factor("Xx", 0.5)
    with pytest.raises(ValueError, match="finite"):
        electron_form_factor("Mo", [0.1, np.nan])
