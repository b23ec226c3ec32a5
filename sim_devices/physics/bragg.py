"""Bragg lists of single crystals: kinematic (shape-function) and dynamical (Bloch-wave).

A *Bragg list* is a float64 array of shape ``(n, 3)`` with columns ``(qx, qy, I)``: spot
positions in 1/Å **without** 2π (q = 1/d) in the plane normal to the beam, and spot intensities
as fractions of the incident flux. The beam travels along +z. Row 0 is always the central
(transmitted) beam at (0, 0); the other rows are sorted by |q|, then by azimuth. Remove the
central beam by its position (row 0), not by brightness: in thick crystals a diffracted beam
can be brighter than the transmitted one (dynamical and kinematic lists alike). Beams that
reach the same detector position (a higher-order Laue-zone reflection right above a zero-order
one, as in orthogonal cells with a long axis along the beam) are merged into one row with the
summed intensity; beams that project onto (0, 0) are added to the central beam.

Orientation
-----------
``zone_axis_rotation(cell, uvw)`` returns the rotation R that maps the crystal's Cartesian
frame to the laboratory frame (r_lab = R r): the real-space direction [uvw] (= ``uvw @ cell``)
goes along +z (the beam), and the shortest reciprocal-lattice vector of the zero-order Laue
zone (hkl with hu + kv + lw = 0, metric of the given cell; ties broken by the
lexicographically largest (h, k, l)) goes along +x. For a cubic cell along [001] R is the
identity. The same R is what abTEM calls ``orientation_matrix`` (it rotates the cell as
``cell @ R.T``), so kinematic and dynamical spots share one frame; tests check this.

Kinematic intensities (first Born approximation, slab of thickness t)
---------------------------------------------------------------------
Reciprocal-lattice points g (Cartesian, rotated frame) with |g_xy| ≤ k_max and excitation
error |s_g| ≤ sg_max, where s_g = (k² − |k + g|²)/(2k) = −g_z − λ|g|²/2 for k = (0, 0, 1/λ)
(the same s_g abTEM puts on the diagonal of its Bloch-wave matrix). Structure factor, in Å,

    F_g = Σ_j f_j(|g|) · exp(−2π² σ_j² |g|²) · exp(−2πi g·r_j),

with Lobato electron scattering factors f_j (``form_factors``) and the isotropic Debye–Waller
factor of an rms displacement σ_j per Cartesian component (B = 8π²σ²; abTEM's convention).
Integrating the first-order amplitude over the slab, dψ_g/dz = iπ U_g/k · exp(2πi s_g z) with
U_g = γ F_g / (π V_cell) (γ: Lorentz factor, so the relativistic mass enters as in abTEM),
gives the two-beam-consistent extinction distance ξ_g = π V_cell / (λ γ |F_g|) and

    I_g^kin = (λ γ |F_g| / V_cell)² · (sin(π t s_g) / (π s_g))².

Central beam: with S = Σ_g I_g^kin, the list reports I_0 = 1/(1 + S) and I_g = I_g^kin/(1 + S).
The total flux is 1, I_0 agrees with 1 − S to first order (thin crystals), it never goes
negative when the kinematic sum exceeds 1 (thick crystals, where kinematic theory fails
anyway), and the ratios between diffracted beams are purely kinematic.

Dynamical intensities
---------------------
abTEM's Bloch-wave solver (``abtem.bloch``, Lobato parameterization, float64 on the CPU,
eager): the structure factor table is built once per crystal (``structure_factor_for``, for
|g| ≤ 2·sqrt(k_max² + 0.3²) so that every coupling g − h between beams is present), then for each
orientation the beams with |s_g| ≤ sg_max and |g| ≤ g_lim (the smallest sphere holding every
beam with |g_xy| ≤ k_max and |s_g| ≤ sg_max) are coupled and propagated through the slab;
intensities are |ψ_g(t)|² (flux-conserving up to the tiny metric of g_z ≠ 0 beams). Only
beams with |g_xy| ≤ k_max are listed. In the thin limit the two methods agree (tests: within
2 % at 0.1 nm; at 1 nm gold already deviates by ~35 %, its extinction distances being short).
No absorptive (thermal-diffuse) potential is included: the Debye–Waller factor only damps
the elastic Fourier coefficients, and the flux stays 1.

Timings (this machine: 2 CPU cores shared with other jobs; 300 kV, k_max = 2 1/Å,
sg_max = 0.05 1/Å, 20 nm; best of repeats on an idle machine, ×3–10 slower under load)
------------------------------------------------------------------------------------------
* Importing abTEM: ~3 s, once per process (it is imported lazily, on the first dynamical call).
* FCC Au, conventional 4-atom cell, [011]: structure-factor table ~5–10 ms once per crystal;
  dynamical pattern ~2.5 ms (69 beams); kinematic pattern ~1 ms.
* 40-atom orthorhombic cell (random Pnma Mg8Si8O24 from pyxtal; a, b, c = 5.69, 6.80,
  17.58 Å; V = 680 Å³): table ~1.0–1.2 s once; dynamical pattern ~0.3 s along [001], [011],
  [111] (~880 coupled beams), ~2–5 s along [100] (1,505 beams: the projected cell
  b·c = 120 Å² is large); kinematic pattern ~5–10 ms. The complex Hermitian
  eigendecomposition dominates and grows as the cube of the beam count, ≈ π k_max²·A_proj
  for a projected cell area A_proj. On a shared 2-core machine OpenBLAS with 2 threads can be
  several times slower than with one (OPENBLAS_NUM_THREADS=1; parallelise over crystals).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from numpy.typing import ArrayLike

from .form_factors import electron_form_factor, known_elements

__all__ = [
    "as_atoms",
    "bragg_lists_for_zone_axes",
    "dynamical_bragg",
    "electron_wavelength",
    "kinematic_bragg",
    "structure_factor_for",
    "zone_axes",
    "zone_axis_rotation",
]

_HC_EV_ANGSTROM = 12398.419843320026  # h·c in eV·Å (CODATA 2018)
_ELECTRON_REST_ENERGY_EV = 510998.95000  # m_e c² in eV
_SF_GZ_MARGIN = 0.3  # 1/Å: table covers |g| ≤ 2·sqrt(k_max² + margin²) (beams off the ZOLZ)
_SF_ATOM_CHUNK = 8  # atoms per partial structure-factor table (bounds abTEM's memory)
_METHODS = ("dynamical", "kinematic")
_ORTHO_TOL = 1e-6
_MERGE_Q = 1e-8  # 1/Å: spots closer than this in (qx, qy) are one detector spot

ThermalSigma = float | Mapping[str, float]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _finite_float(name: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{name}={value!r} must be finite")
    return out


def _positive(name: str, value: Any, unit: str, hi: float | None = None) -> float:
    out = _finite_float(name, value)
    if out <= 0.0 or (hi is not None and out > hi):
        allowed = f"in (0, {hi:g}]" if hi is not None else "> 0"
        raise ValueError(f"{name}={value!r} {unit} is not allowed; it must be {allowed}")
    return out


def _non_negative(name: str, value: Any, unit: str) -> float:
    out = _finite_float(name, value)
    if out < 0.0:
        raise ValueError(f"{name}={value!r} {unit} is negative; it must be ≥ 0")
    return out


def _zone_axis_vector(zone_axis: ArrayLike, name: str = "zone_axis") -> np.ndarray:
    """Three integers, not all zero, reduced by their gcd."""
    try:
        arr = np.asarray(zone_axis, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={zone_axis!r} must be three integers [u, v, w]") from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={zone_axis!r} must be three finite integers [u, v, w]")
    if not np.all(arr == np.round(arr)):
        raise ValueError(f"{name}={zone_axis!r} must hold integers (Miller indices [u, v, w])")
    uvw = arr.astype(np.int64)
    if not np.any(uvw):
        raise ValueError(f"{name}={zone_axis!r} is the zero vector; a direction is needed")
    return uvw // math.gcd(*(int(x) for x in uvw))


def _cell_matrix(cell: Any, name: str = "cell") -> np.ndarray:
    try:
        mat = np.asarray(cell, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 3×3 matrix of lattice vectors (rows)") from None
    if mat.shape != (3, 3) or not np.all(np.isfinite(mat)):
        raise ValueError(f"{name} must be a finite 3×3 matrix (rows a, b, c); got {mat.shape}")
    if abs(np.linalg.det(mat)) < 1e-6:
        raise ValueError(f"{name} has zero volume; three independent lattice vectors are needed")
    return mat


def _validate_rotation(rotation: ArrayLike) -> np.ndarray:
    try:
        rot = np.asarray(rotation, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("rotation must be a 3×3 rotation matrix") from None
    if rot.shape != (3, 3) or not np.all(np.isfinite(rot)):
        raise ValueError(f"rotation must be a finite 3×3 matrix; got shape {rot.shape}")
    if not np.allclose(rot @ rot.T, np.eye(3), atol=_ORTHO_TOL) or np.linalg.det(rot) < 0:
        raise ValueError(
            "rotation must be a proper rotation (R Rᵀ = 1, det R = +1); got "
            f"{np.array2string(rot, precision=4)}"
        )
    return rot


def _thermal_sigmas(atoms: Atoms, thermal_sigma: ThermalSigma) -> np.ndarray:
    """Per-atom rms displacement (Å) from a float or a {symbol: σ} mapping."""
    symbols = atoms.get_chemical_symbols()
    if isinstance(thermal_sigma, Mapping):
        missing = sorted(set(symbols) - set(thermal_sigma))
        if missing:
            raise ValueError(
                f"thermal_sigma has no entry for {missing}; give a float or a σ for every "
                f"element of the crystal {sorted(set(symbols))}"
            )
        values = {
            s: _non_negative(f"thermal_sigma[{s!r}]", v, "Å") for s, v in thermal_sigma.items()
        }
        return np.array([values[s] for s in symbols], dtype=np.float64)
    sigma = _non_negative("thermal_sigma", thermal_sigma, "Å")
    return np.full(len(atoms), sigma)


def _common_checks(
    voltage_kv: float, k_max: float, thickness_nm: float, sg_max: float, min_intensity: float
) -> tuple[float, float, float, float, float]:
    voltage_kv = _positive("voltage_kv", voltage_kv, "kV", hi=1e5)
    wavelength = electron_wavelength(voltage_kv)
    k_max = _positive("k_max", k_max, "1/Å", hi=0.5 / wavelength)
    thickness = 10.0 * _non_negative("thickness_nm", thickness_nm, "nm")
    sg_max = _positive("sg_max", sg_max, "1/Å", hi=1.0)
    min_intensity = _non_negative("min_intensity", min_intensity, "(fraction of the beam)")
    return wavelength, k_max, thickness, sg_max, min_intensity


def _lorentz_factor(voltage_kv: float) -> float:
    return 1.0 + 1e3 * voltage_kv / _ELECTRON_REST_ENERGY_EV


def _g_limit(k_max: float, sg_max: float, wavelength: float) -> float:
    """Radius of the sphere holding every g with |g_xy| ≤ k_max and |s_g| ≤ sg_max.

    |s_g| ≤ sg_max needs |g_z| ≤ sg_max + λ(k_max² + g_z²)/2; the bound is the smaller root.
    """
    c = sg_max + 0.5 * wavelength * k_max**2
    gz = 2.0 * c / (1.0 + math.sqrt(max(1.0 - 2.0 * wavelength * c, 0.0)))
    return math.hypot(k_max, gz)


# --------------------------------------------------------------------------------------------
# public: structures and geometry
# --------------------------------------------------------------------------------------------


def as_atoms(crystal: Any) -> Atoms:
    """A validated, periodic copy of a crystal as ``ase.Atoms``.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell (any setting). A pymatgen structure is converted with
        ``pymatgen.io.ase.AseAtomsAdaptor``; it must be ordered (no partial occupancies).

    Returns
    -------
    ase.Atoms
        A new object with ``pbc=True``; the input is never modified.

    Raises
    ------
    ValueError
        For another type, an empty crystal, a zero-volume cell, non-finite positions or an
        element without electron scattering factors (dummy species, Z = 0 or Z > 103).
    """
    if isinstance(crystal, Atoms):
        atoms = crystal.copy()
    else:
        try:
            from pymatgen.core import IStructure
        except ImportError:  # pragma: no cover - pymatgen is a dependency
            IStructure = None  # noqa: N806
        if IStructure is None or not isinstance(crystal, IStructure):
            raise ValueError(
                f"crystal must be an ase.Atoms or a pymatgen Structure, got "
                f"{type(crystal).__name__}"
            )
        if len(crystal) == 0:
            raise ValueError("crystal is empty: a structure needs at least one atom")
        if not crystal.is_ordered:
            raise ValueError(
                "crystal has partial occupancies; only ordered structures are supported"
            )
        bad = sorted(
            {str(sp) for site in crystal for sp in site.species if getattr(sp, "Z", 0) < 1}
        )
        if bad:
            raise ValueError(
                f"crystal holds species {bad} that are not elements; known elements are "
                f"H…Lr (Z = 1…{len(known_elements())})"
            )
        from pymatgen.io.ase import AseAtomsAdaptor

        converted = AseAtomsAdaptor.get_atoms(crystal)
        atoms = Atoms(numbers=converted.numbers, positions=converted.positions, cell=converted.cell)
    if len(atoms) == 0:
        raise ValueError("crystal is empty: a structure needs at least one atom")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError("crystal has NaN or infinite positions")
    cell = np.asarray(atoms.cell, dtype=np.float64)
    if not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(
            f"crystal has a zero-volume cell ({atoms.cell.cellpar().round(4).tolist()}); "
            "three independent lattice vectors are needed"
        )
    numbers = np.unique(atoms.numbers)
    n_known = len(known_elements())
    bad_z = [int(z) for z in numbers if z < 1 or z > n_known]
    if bad_z:
        names = [chemical_symbols[z] if 0 <= z < len(chemical_symbols) else str(z) for z in bad_z]
        raise ValueError(
            f"crystal holds element(s) {names} (Z = {bad_z}) with no electron scattering "
            f"factor; known elements are H…Lr (Z = 1…{n_known})"
        )
    atoms.pbc = True
    return atoms


def electron_wavelength(voltage_kv: float = 300.0) -> float:
    """Relativistic electron wavelength.

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage in kV (> 0).

    Returns
    -------
    float
        λ = h c / sqrt(E (E + 2 m c²)) in Å, E = e·V; 0.019687 Å at 300 kV.
    """
    voltage_kv = _positive("voltage_kv", voltage_kv, "kV", hi=1e5)
    energy = 1e3 * voltage_kv
    return _HC_EV_ANGSTROM / math.sqrt(energy * (energy + 2.0 * _ELECTRON_REST_ENERGY_EV))


def _zolz_basis(uvw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer basis of {hkl : h u + k v + l w = 0} by unimodular column operations."""
    a = [int(x) for x in uvw]
    cols = np.eye(3, dtype=np.int64)
    while sum(1 for x in a if x != 0) > 1:
        j = min((i for i in range(3) if a[i] != 0), key=lambda i: abs(a[i]))
        for i in range(3):
            if i != j and a[i] != 0:
                q = a[i] // a[j]
                a[i] -= q * a[j]
                cols[:, i] -= q * cols[:, j]
    null = [cols[:, i] for i in range(3) if a[i] == 0]
    return null[0], null[1]


def _shortest_zolz_vector(uvw: np.ndarray, recip: np.ndarray) -> np.ndarray:
    """Shortest hkl in the zero-order Laue zone (Lagrange–Gauss reduction), ties broken."""
    metric = recip @ recip.T

    def norm2(v: np.ndarray) -> float:
        return float(v @ metric @ v)

    b1, b2 = _zolz_basis(uvw)
    if norm2(b1) > norm2(b2):
        b1, b2 = b2, b1
    for _ in range(10_000):
        mu = round(float(b1 @ metric @ b2) / norm2(b1))
        b2 = b2 - mu * b1
        if norm2(b2) < norm2(b1):
            b1, b2 = b2, b1
        else:
            break
    candidates = [s * v for v in (b1, b2, b1 + b2, b1 - b2) for s in (1, -1)]
    lengths = np.array([norm2(v) for v in candidates])
    shortest = lengths.min()
    ties = [
        tuple(int(x) for x in v)
        for v, n in zip(candidates, lengths, strict=True)
        if n <= shortest * (1.0 + 1e-6)
    ]
    return np.array(max(ties), dtype=np.int64)


def zone_axis_rotation(cell: ArrayLike, zone_axis: ArrayLike) -> np.ndarray:
    """Rotation that puts the zone axis [uvw] along the beam (+z).

    Parameters
    ----------
    cell : array_like, shape (3, 3)
        Lattice vectors as rows (``ase.Atoms.cell`` works), in Å.
    zone_axis : array_like of 3 ints
        Real-space direction [uvw] in the basis of ``cell`` (the Cartesian direction is
        ``uvw @ cell``); it is reduced by its gcd.

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        Proper rotation R with r_lab = R @ r_crystal (Cartesian). Rows are the lab axes
        expressed in the crystal frame: row 2 = unit vector along ``uvw @ cell``; row 0 = the
        unit vector along the shortest reciprocal-lattice vector g = hkl @ reciprocal(cell) of
        the zero-order Laue zone (h u + k v + l w = 0; among equally short ones the
        lexicographically largest (h, k, l)); row 1 = row 2 × row 0. This is abTEM's
        ``orientation_matrix`` convention (the rotated cell is ``cell @ R.T``).

    Raises
    ------
    ValueError
        If ``cell`` is not a non-singular 3×3 matrix or ``zone_axis`` is not three integers
        with at least one non-zero.
    """
    mat = _cell_matrix(cell)
    uvw = _zone_axis_vector(zone_axis)
    recip = np.linalg.inv(mat).T
    z = uvw @ mat
    z = z / np.linalg.norm(z)
    hkl = _shortest_zolz_vector(uvw, recip)
    x = hkl @ recip
    x = x - (x @ z) * z  # exactly perpendicular already; this removes round-off
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def _laue_rotations(atoms: Atoms, symprec: float) -> np.ndarray:
    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():
        # spglib ≥ 2.5 warns about its legacy error handling (returning None) on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except Exception:  # spglib's new error handling raises SpglibError instead
            dataset = None
    if dataset is None:
        raise ValueError(
            f"spglib found no symmetry for the crystal at symprec={symprec} Å; try a larger symprec"
        )
    rotations = np.asarray(dataset.rotations, dtype=np.int64)
    rotations = np.unique(np.concatenate([rotations, -rotations]), axis=0)
    return rotations


def _orbit_representative(uvw: np.ndarray, rotations: np.ndarray) -> tuple[int, int, int]:
    members = rotations @ uvw  # spglib's W acts on fractional (direct-lattice) components
    best = min(
        ((int(np.sum(m < 0)), tuple(int(x) for x in m)) for m in members),
    )
    return best[1]


def zone_axes(crystal: Any, n: int = 30, max_index: int = 4, symprec: float = 1e-3) -> np.ndarray:
    """Symmetry-distinct zone axes across the fundamental zone, densest first.

    Every integer [uvw] with gcd 1 and |u|, |v|, |w| ≤ ``max_index`` is reduced by the
    crystal's Laue group (spglib's point-group rotations plus inversion: Friedel's law makes
    kinematic patterns centrosymmetric, and [uvw] and [−u−v−w] are related by it) to one
    representative per orbit: the member with the fewest negative indices, then the
    lexicographically smallest (so cubic crystals give [001], [011], [111], [012], …, the
    standard triangle 0 ≤ u ≤ v ≤ w). Orbits are ordered by the length of ``uvw @ cell``
    (shortest real-space period along the beam = densest zero-order Laue zone first), ties by
    the representative.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The crystal; [uvw] refer to its cell as given.
    n : int
        Maximum number of zone axes returned (≥ 1).
    max_index : int
        Largest |u|, |v|, |w| enumerated (1 … 20).
    symprec : float
        spglib's symmetry tolerance in Å (> 0).

    Returns
    -------
    numpy.ndarray of int64, shape (m, 3)
        m ≤ n representatives, one per orbit.

    Raises
    ------
    ValueError
        For an invalid crystal or argument.
    """
    atoms = as_atoms(crystal)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n={n!r} must be an integer ≥ 1")
    if (
        isinstance(max_index, bool)
        or not isinstance(max_index, int | np.integer)
        or not 1 <= max_index <= 20
    ):
        raise ValueError(f"max_index={max_index!r} must be an integer in [1, 20]")
    symprec = _positive("symprec", symprec, "Å", hi=1.0)
    rotations = _laue_rotations(atoms, symprec)
    cell = np.asarray(atoms.cell, dtype=np.float64)

    rng = np.arange(-max_index, max_index + 1)
    grid = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[np.any(grid != 0, axis=1)]
    grid = grid[np.gcd.reduce(np.abs(grid), axis=1) == 1]
    reps = {_orbit_representative(uvw, rotations) for uvw in grid}
    ordered = sorted(reps, key=lambda r: (round(float(np.linalg.norm(np.array(r) @ cell)), 8), r))
    return np.array(ordered[:n], dtype=np.int64).reshape(-1, 3)


def _orientation(atoms: Atoms, zone_axis: ArrayLike, rotation: ArrayLike | None) -> np.ndarray:
    if rotation is not None:
        return _validate_rotation(rotation)
    return zone_axis_rotation(atoms.cell, zone_axis)


def _to_bragg_list(
    qxy: np.ndarray, intensity: np.ndarray, central: float, min_intensity: float
) -> np.ndarray:
    """Assemble a Bragg list: merge coincident spots, threshold, sort, central beam first.

    Beams whose in-plane positions coincide (e.g. a higher-order Laue-zone reflection right
    above a zero-order one in an orthogonal cell) reach the same detector spot, so their
    intensities are summed; beams that project onto (0, 0) join the central beam.
    """
    if len(qxy):
        keys = np.round(qxy / _MERGE_Q, 0)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        summed = np.bincount(inverse, weights=intensity, minlength=len(unique))
        first = np.full(len(unique), len(qxy))
        np.minimum.at(first, inverse, np.arange(len(qxy)))
        qxy, intensity = qxy[first], summed
        at_centre = np.all(unique == 0, axis=1)
        central += float(intensity[at_centre].sum())
        qxy, intensity = qxy[~at_centre], intensity[~at_centre]
    keep = intensity >= min_intensity
    qxy, intensity = qxy[keep], intensity[keep]
    radius = np.round(np.hypot(qxy[:, 0], qxy[:, 1]), 9)
    angle = np.round(np.arctan2(qxy[:, 1], qxy[:, 0]), 9)
    order = np.lexsort((angle, radius))
    out = np.empty((len(order) + 1, 3), dtype=np.float64)
    out[0] = (0.0, 0.0, central)
    out[1:, :2] = qxy[order]
    out[1:, 2] = intensity[order]
    return out


# --------------------------------------------------------------------------------------------
# public: kinematic
# --------------------------------------------------------------------------------------------


def kinematic_bragg(
    crystal: Any,
    zone_axis: ArrayLike = (0, 0, 1),
    *,
    rotation: ArrayLike | None = None,
    voltage_kv: float = 300.0,
    k_max: float = 2.0,
    thickness_nm: float = 20.0,
    sg_max: float = 0.05,
    thermal_sigma: ThermalSigma = 0.0,
    min_intensity: float = 1e-7,
) -> np.ndarray:
    """Kinematic Bragg list of a slab (first Born approximation with a shape function).

    I_g ∝ (λ γ |F_g| / V_cell)² (sin(π t s_g)/(π s_g))², renormalised with the central beam
    so that the total flux is 1 (see the module docstring for the derivation).

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    zone_axis : array_like of 3 ints
        [uvw] along the beam (see :func:`zone_axis_rotation`); ignored when ``rotation`` is
        given.
    rotation : array_like, shape (3, 3), optional
        A proper rotation R (r_lab = R r_crystal) for an arbitrary orientation, e.g. a
        randomly oriented nanoparticle. Overrides ``zone_axis``.
    voltage_kv : float
        Accelerating voltage in kV.
    k_max : float
        Largest in-plane |q| listed, 1/Å (without 2π).
    thickness_nm : float
        Slab thickness t in nm (≥ 0).
    sg_max : float
        Largest |excitation error| kept, 1/Å (in (0, 1]).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement per Cartesian component in Å (one value, or one per
        element); Debye–Waller factor exp(−2π² σ² g²).
    min_intensity : float
        Diffracted spots weaker than this (fraction of the incident beam) are dropped; the
        central beam is always kept.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns (qx, qy, I); row 0 is the central beam.

    Raises
    ------
    ValueError
        For an invalid crystal, orientation or parameter.
    """
    atoms = as_atoms(crystal)
    wavelength, k_max, thickness, sg_max, min_intensity = _common_checks(
        voltage_kv, k_max, thickness_nm, sg_max, min_intensity
    )
    sigmas = _thermal_sigmas(atoms, thermal_sigma)
    rot = _orientation(atoms, zone_axis, rotation)
    cell = np.asarray(atoms.cell, dtype=np.float64)
    recip = np.linalg.inv(cell).T
    volume = abs(float(np.linalg.det(cell)))

    g_lim = _g_limit(k_max, sg_max, wavelength)
    bounds = [int(math.ceil(g_lim * float(np.linalg.norm(a)))) for a in cell]
    axes = [np.arange(-b, b + 1) for b in bounds]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    g = (hkl @ recip) @ rot.T
    g2 = np.einsum("ij,ij->i", g, g)
    sg = -g[:, 2] - 0.5 * wavelength * g2
    keep = (np.hypot(g[:, 0], g[:, 1]) <= k_max) & (np.abs(sg) <= sg_max)
    hkl, g, g2, sg = hkl[keep], g[keep], g2[keep], sg[keep]
    g_len = np.sqrt(g2)

    frac = atoms.get_scaled_positions(wrap=False)
    symbols = np.array(atoms.get_chemical_symbols())
    amplitude = np.zeros(len(hkl), dtype=np.complex128)
    for symbol in np.unique(symbols):
        idx = np.flatnonzero(symbols == symbol)
        f = electron_form_factor(str(symbol), g_len)
        phases = np.exp(-2j * np.pi * (hkl @ frac[idx].T))
        dwf = np.exp(-2.0 * np.pi**2 * np.outer(g2, sigmas[idx] ** 2))
        amplitude += f * np.sum(phases * dwf, axis=1)

    gamma = _lorentz_factor(float(voltage_kv))
    shape = thickness * np.sinc(thickness * sg)  # sin(π t s)/(π s), → t at s = 0
    intensity = (wavelength * gamma * np.abs(amplitude) / volume) ** 2 * shape**2
    norm = 1.0 + float(intensity.sum())
    return _to_bragg_list(g[:, :2], intensity / norm, 1.0 / norm, min_intensity)


# --------------------------------------------------------------------------------------------
# public: dynamical (abTEM Bloch waves)
# --------------------------------------------------------------------------------------------


def _abtem_config():
    import abtem

    return abtem.config.set({"device": "cpu", "precision": "float64"})


def structure_factor_for(crystal: Any, k_max: float = 2.0, thermal_sigma: ThermalSigma = 0.0):
    """Built abTEM structure-factor table of a crystal, reusable for many orientations.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    k_max : float
        The largest in-plane |q| the patterns will list, 1/Å. The table covers
        |g| ≤ 2·sqrt(k_max² + 0.3²), so every coupling g − h between beams is present, also for
        beams up to 0.3 1/Å off the zero-order Laue zone (enough for sg_max ≲ 0.25 1/Å).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement in Å (Debye–Waller exp(−2π² σ² g²)).

    Returns
    -------
    abtem.bloch.StructureFactorArray
        Lobato parameterization, float64, on the CPU, evaluated eagerly. abTEM holds an
        (atoms × reflections) complex array while it builds the table, so the atoms are fed in
        chunks of 8 (same reflections, centering detected once on the whole cell) and the
        partial tables summed; peak memory stays ~0.1 GB even for 1,000 Å³ cells.

    Raises
    ------
    ValueError
        For an invalid crystal or parameter.
    """
    from abtem.bloch import StructureFactor, StructureFactorArray
    from abtem.bloch.utils import auto_detect_centering

    atoms = as_atoms(crystal)
    k_max = _positive("k_max", k_max, "1/Å", hi=50.0)
    sigmas = _thermal_sigmas(atoms, thermal_sigma)
    g_max = 2.0 * math.hypot(k_max, _SF_GZ_MARGIN)
    with _abtem_config(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Something went wrong with the centering")
        centering = auto_detect_centering(atoms)
        total = None
        for start in range(0, len(atoms), _SF_ATOM_CHUNK):
            stop = start + _SF_ATOM_CHUNK
            chunk_sigmas = sigmas[start:stop]
            part = StructureFactor(
                atoms[start:stop],
                g_max=g_max,
                parametrization="lobato",
                thermal_sigma=chunk_sigmas if np.any(chunk_sigmas) else 0.0,
                device="cpu",
                centering=centering,
            ).build(lazy=False)
            total = part.array if total is None else total + part.array
        return StructureFactorArray(
            total, part.hkl, atoms.cell.copy(), part.g_max, centering=centering
        )


def dynamical_bragg(
    crystal: Any,
    zone_axis: ArrayLike = (0, 0, 1),
    *,
    rotation: ArrayLike | None = None,
    voltage_kv: float = 300.0,
    k_max: float = 2.0,
    thickness_nm: float = 20.0,
    sg_max: float = 0.05,
    thermal_sigma: ThermalSigma = 0.0,
    min_intensity: float = 1e-7,
    structure_factor: Any = None,
) -> np.ndarray:
    """Dynamical (multiple-scattering) Bragg list from abTEM's Bloch-wave solver.

    Parameters
    ----------
    crystal, zone_axis, rotation, voltage_kv, k_max, thickness_nm, sg_max, thermal_sigma, \
min_intensity
        As in :func:`kinematic_bragg`. ``thermal_sigma`` is ignored when ``structure_factor``
        is given (it is baked into the table).
    structure_factor : abtem.bloch.StructureFactorArray, optional
        A table from :func:`structure_factor_for` for this crystal (same cell), built for a
        ``k_max`` at least this one; saves rebuilding it for every orientation.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns (qx, qy, I) with I = |ψ_g(t)|²; row 0 is the central beam.

    Raises
    ------
    ValueError
        For an invalid crystal, orientation or parameter, or a ``structure_factor`` of another
        cell or too small a ``k_max``.
    """
    from abtem.bloch import BlochWaves

    atoms = as_atoms(crystal)
    wavelength, k_max, thickness, sg_max, min_intensity = _common_checks(
        voltage_kv, k_max, thickness_nm, sg_max, min_intensity
    )
    rot = _orientation(atoms, zone_axis, rotation)
    g_lim = _g_limit(k_max, sg_max, wavelength)
    if structure_factor is None:
        structure_factor = structure_factor_for(atoms, k_max, thermal_sigma)
    else:
        _thermal_sigmas(atoms, thermal_sigma)  # still validate it
        sf_cell = np.asarray(getattr(structure_factor, "cell", np.zeros((3, 3))), dtype=float)
        if not hasattr(structure_factor, "hkl") or not np.allclose(
            sf_cell, np.asarray(atoms.cell), atol=1e-6
        ):
            raise ValueError(
                "structure_factor must be the abTEM StructureFactorArray of this crystal "
                "(same cell), e.g. structure_factor_for(crystal, k_max)"
            )
        if structure_factor.g_max / 2.0 < g_lim - 1e-9:
            raise ValueError(
                f"structure_factor covers beams up to {structure_factor.g_max / 2:.3f} 1/Å but "
                f"k_max={k_max} and sg_max={sg_max} need {g_lim:.3f} 1/Å; rebuild it with "
                f"structure_factor_for(crystal, k_max={k_max})"
            )

    with _abtem_config(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Something went wrong with the centering")
        bloch = BlochWaves(
            structure_factor,
            energy=1e3 * float(voltage_kv),
            sg_max=sg_max,
            g_max=g_lim,
            orientation_matrix=rot,
            device="cpu",
        )
        hkl = np.asarray(bloch.hkl)
        g = np.asarray(bloch.g_vec)
        if thickness == 0.0 or len(hkl) == 0:
            intensity = np.all(hkl == 0, axis=1).astype(np.float64)
        else:
            patterns = bloch.calculate_diffraction_patterns(thickness, lazy=False)
            intensity = np.asarray(patterns.array, dtype=np.float64).reshape(-1)
    central_mask = np.all(hkl == 0, axis=1)
    central = float(intensity[central_mask].sum()) if central_mask.any() else 1.0
    listed = ~central_mask & (np.hypot(g[:, 0], g[:, 1]) <= k_max)
    return _to_bragg_list(g[listed, :2], intensity[listed], central, min_intensity)


def bragg_lists_for_zone_axes(
    crystal: Any,
    zone_axes: ArrayLike,
    *,
    method: str = "dynamical",
    **kw: Any,
) -> list[np.ndarray]:
    """Bragg lists of one crystal along several zone axes.

    For ``method="dynamical"`` the abTEM structure-factor table is built once (or taken from
    ``structure_factor=`` in ``kw``) and reused for every zone axis.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    zone_axes : array_like of int, shape (m, 3)
        The [uvw] list, e.g. from :func:`zone_axes`.
    method : {"dynamical", "kinematic"}
        Which simulator.
    **kw
        Keyword arguments of :func:`dynamical_bragg` / :func:`kinematic_bragg` (not
        ``rotation``).

    Returns
    -------
    list of numpy.ndarray
        One Bragg list per zone axis, in order.

    Raises
    ------
    ValueError
        For an unknown method, a ``rotation`` keyword, a malformed zone-axis list or any
        error of the simulators.
    """
    if method not in _METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {_METHODS}")
    if "rotation" in kw:
        raise ValueError("rotation is not accepted here: give zone_axes, or call the simulator")
    try:
        axes = np.asarray(zone_axes, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("zone_axes must be an (m, 3) array of integers [uvw]") from None
    if axes.ndim != 2 or axes.shape[1] != 3:
        raise ValueError(f"zone_axes must have shape (m, 3); got {axes.shape}")
    atoms = as_atoms(crystal)
    for i, uvw in enumerate(axes):
        _zone_axis_vector(uvw, name=f"zone_axes[{i}]")
    if method == "kinematic":
        kw.pop("structure_factor", None)
        return [kinematic_bragg(atoms, uvw, **kw) for uvw in axes.astype(np.int64)]
    if kw.get("structure_factor") is None:
        kw["structure_factor"] = structure_factor_for(
            atoms, kw.get("k_max", 2.0), kw.get("thermal_sigma", 0.0)
        )
    return [dynamical_bragg(atoms, uvw, **kw) for uvw in axes.astype(np.int64)]
