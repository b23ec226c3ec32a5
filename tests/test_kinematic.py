"""Physics of the kinematic backend: exactness, symmetry, Bragg positions and intensities."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, maximum_filter

from uedsteer.sim_devices.materials import MOTE2
from uedsteer.sim_devices.physics import (
    ReciprocalGrid,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    kinematic_intensities,
    kinematic_intensity,
    rotate_in_plane,
)

A_2H = 3.5128


def _peaks(image, grid, qmin, qmax, k):
    """The k brightest local maxima with qmin < |q| < qmax, as (qx, qy, value)."""
    local = (image == maximum_filter(image, size=5)) & (grid.q > qmin) & (grid.q < qmax)
    iy, ix = np.nonzero(local)
    order = np.argsort(image[iy, ix])[::-1][:k]
    return grid.qx[iy[order], ix[order]], grid.qy[iy[order], ix[order]], image[iy[order], ix[order]]


def _centroid(image, grid, q0, half=3):
    iy, ix = grid.index_of(*q0)
    win = image[iy - half : iy + half + 1, ix - half : ix + half + 1]
    qx = grid.qx[iy - half : iy + half + 1, ix - half : ix + half + 1]
    qy = grid.qy[iy - half : iy + half + 1, ix - half : ix + half + 1]
    return (win * qx).sum() / win.sum(), (win * qy).sum() / win.sum()


def test_nufft_matches_direct_sum(grid, rng):
    atoms = add_thermal_displacements(MOTE2.supercell("1T'", (7, 5)), 0.1, rng)
    atoms = rotate_in_plane(atoms, 17.0)
    atoms.positions -= 25.0  # negative coordinates exercise the phase wrapping
    assert 200 <= len(atoms) <= 400
    fast = kinematic_intensity(atoms, grid, method="nufft")
    ref = kinematic_intensity(atoms, grid, method="direct")
    assert np.abs(fast - ref).max() / ref.max() <= 1e-5
    assert np.linalg.norm(fast - ref) / np.linalg.norm(ref) <= 1e-5


def test_batched_equals_single(grid, rng):
    structs = [MOTE2.supercell("2H", (5, 3)), MOTE2.supercell("1T'", (4, 4))]
    batch = kinematic_intensities(structs, grid)
    assert batch.shape == (2, 261, 261)
    assert np.allclose(batch[1], kinematic_intensity(structs[1], grid))


def test_friedel_symmetry(grid, rng):
    atoms = add_thermal_displacements(MOTE2.supercell("1T'", (12, 7)), 0.1, rng)
    intensity = kinematic_intensity(atoms, grid)
    assert np.allclose(intensity, intensity[::-1, ::-1], rtol=1e-6, atol=1e-6 * intensity.max())


def _rotation_similarity(phase, grid):
    atoms = MOTE2.supercell(phase, (51, 30))
    a = gaussian_filter(kinematic_intensity(atoms, grid), 2)
    b = gaussian_filter(kinematic_intensity(rotate_in_plane(atoms, 60.0), grid), 2)
    m = grid.q > 0.15
    return np.corrcoef(a[m], b[m])[0, 1]


def test_2h_is_sixfold_and_1tp_is_not(grid):
    assert _rotation_similarity("2H", grid) > 0.98
    assert _rotation_similarity("1T'", grid) < 0.8


def test_first_bragg_ring_of_2h(grid):
    intensity = kinematic_intensity(MOTE2.supercell("2H", (51, 30)), grid)
    qx, qy, _ = _peaks(intensity, grid, 0.1, 0.45, 6)
    q_ring = 2.0 / (np.sqrt(3.0) * A_2H)
    assert np.allclose(np.hypot(qx, qy), q_ring, atol=grid.dq)
    angles = np.sort(np.degrees(np.arctan2(qy, qx)) % 360)
    assert np.allclose(np.diff(angles), 60.0, atol=2.5)
    # nothing brighter than a shape-function tail inside the first ring
    inner = intensity[(grid.q > 0.05) & (grid.q < q_ring - 0.05)]
    assert inner.max() < 1e-2 * intensity[(grid.q > 0.05)].max()


def test_vacancies_scale_bragg_intensity(grid, rng):
    atoms = MOTE2.supercell("2H", (51, 30))
    pristine = kinematic_intensity(atoms, grid)
    v = 0.15
    damaged = kinematic_intensity(add_vacancies(atoms, {"Mo": v, "Te": v}, rng), grid)
    qx, qy, peak = _peaks(pristine, grid, 0.2, 1.0, 12)
    idx = [grid.index_of(x, y) for x, y in zip(qx, qy, strict=True)]
    ratio = np.array([damaged[i] for i in idx]) / peak
    assert np.median(ratio) == pytest.approx((1 - v) ** 2, rel=0.03)
    # the lost Bragg intensity reappears as diffuse scattering between the spots
    between = (grid.q > 0.2) & (pristine < 1e-4 * pristine.max())
    assert np.median(damaged[between]) > 10 * np.median(pristine[between])


def test_strain_moves_bragg_peaks(rng):
    fine = ReciprocalGrid(n=401, dq=0.002)
    atoms = MOTE2.supercell("2H", (51, 30))
    g0 = np.array([1 / A_2H, 1 / (np.sqrt(3) * A_2H)])  # (1,1) of the rectangular cell
    eps = np.array([[0.05, 0.02], [0.02, -0.03]])
    strained = kinematic_intensity(apply_strain(atoms, eps), fine)
    expected = np.linalg.solve((np.eye(2) + eps).T, g0)  # G' = (1+ε)^{-T} G
    found = _centroid(strained, fine, expected)
    assert np.allclose(found, expected, atol=0.001)
    assert np.linalg.norm(expected - g0) > 0.01  # the move is resolved, not a tolerance artefact


def test_m_point_phonon_creates_half_order_spots(grid, rng):
    atoms = MOTE2.supercell("2H", (50, 30))  # even sizes: half-order spots are commensurate
    table = MOTE2.modes("2H")
    # the M mode with the most in-plane motion (a z-polarised mode is invisible at q_z = 0)
    iq = table.qlabels.index("M")
    inplane = np.linalg.norm(table.eigenvectors[iq][:, :, :2], axis=(1, 2))
    band = int(np.argmax(inplane[3:]) + 3)
    shifted = MOTE2.add_phonon(atoms, f"M:{band}", 0.2, rng)
    a, b = atoms.cell[0, 0] / 50, atoms.cell[1, 1] / 30
    pristine = kinematic_intensity(atoms, grid)
    displaced = kinematic_intensity(shifted, grid)
    half_order = []
    for h in range(-4, 5):
        for k in range(-6, 7):
            q = ((h + 0.5) / a, (k + 0.5) / b)
            if 0.1 < np.hypot(*q) < 1.2:
                half_order.append(grid.index_of(*q))
    spots_before = np.array([pristine[i] for i in half_order])
    spots_after = np.array([displaced[i] for i in half_order])
    bragg = pristine.max()
    assert spots_before.max() < 1e-6 * bragg, "half-order spots absent in the pristine crystal"
    assert spots_after.max() > 1e-3 * bragg, "the M phonon must light them up"
    assert (spots_after > 100 * max(spots_before.max(), 1e-12)).sum() >= 10


def test_method_and_grid_errors(grid):
    with pytest.raises(ValueError, match="method="):
        kinematic_intensity(MOTE2.supercell("2H", (2, 2)), grid, method="fft")


def test_pixel_integration_keeps_bragg_intensities_under_a_small_expansion(grid):
    """The seed supercell's peaks are narrower than a pixel: sampled at the pixel centres a
    0.084 % expansion (the simulated sample's at 0.32 absorbed mJ/cm²) changes the brightest
    high-|q| pixels by about a third; integrated over the pixels, by a few percent."""
    from uedsteer.sim_devices.physics import pixel_intensity

    atoms = MOTE2.supercell("2H", (51, 30))
    strained = apply_strain(atoms, [[0.00084, 0.0], [0.0, 0.00084]])
    assert np.array_equal(pixel_intensity(atoms, grid, 1), kinematic_intensity(atoms, grid))
    changes = {}
    for n in (1, 3):
        before, after = pixel_intensity(atoms, grid, n), pixel_intensity(strained, grid, n)
        shell = (grid.q > 1.0) & (grid.q < 1.3)
        bright = shell & (before > np.percentile(before[shell], 99.5))
        changes[n] = abs(float(np.median(after[bright] / before[bright])) - 1.0)
        if n == 3:  # integrated, the shell's intensity stays where it was
            assert after[shell].sum() == pytest.approx(before[shell].sum(), rel=0.02)
    assert changes[1] > 0.2 and changes[3] < 0.1
    for bad in (0, 2, 9, 1.5, True):
        with pytest.raises(ValueError, match=f"oversample={bad!r} is not allowed: give an odd"):
            pixel_intensity(atoms, grid, bad)
