"""Checked inputs of the Bragg-list simulators: crystals, numbers, zone axes, rotations, σ."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from numpy.typing import ArrayLike

from ..form_factors import known_elements

_ORTHO_TOL = 1e-6

ThermalSigma = float | Mapping[str, float]


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
