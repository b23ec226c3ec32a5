"""Synthetic UED frames of every structural class, with the parameters that made them.

Each frame is drawn from its own generator ``np.random.default_rng([seed, label_index, i])``,
so a frame depends only on (seed, label, index): the same seed gives the same frames however
the work is split into chunks or workers.

Per frame (seed recipe, with the ranges of :class:`GeneratorSettings`):

1. supercell of ``base_size`` scaled by N(1, ``size_sigma``) (seed: 51 × 30 cells ≈ 9,000 atoms);
2. the label's perturbation: vacancies, strain, a frozen phonon, 2H → 1T' fraction x or
   degradation; thermal displacements for all; optional in-plane rotation;
3. kinematic intensity (finufft), then the detector model (charge-dependent blur, Poisson shot
   noise, the seed's noise up to 50 %, readout noise, Gamma(2, 1) intensity scale).

:func:`generate_frames` makes frames in memory; :mod:`uedsteer.sim_devices.frame_store` writes
them, chunk by chunk, into a resumable zarr store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .materials import INTERPOLATED, Material, get_material
from .physics import (
    DetectorModel,
    ReciprocalGrid,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    pixel_intensity,
    random_strain,
    rotate_in_plane,
)
from .physics.kinematic import check_oversample

MATERIAL = get_material()
"""The material of the stores (in-memory frames take any material)."""
LABELS = MATERIAL.labels
PHASES = MATERIAL.phases

Range = tuple[float, float]


def _as_range(value: Any, lo: float, hi: float, name: str) -> Range:
    if np.isscalar(value):
        value = (value, value)
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number or a (low, high) pair") from None
    if not (np.isfinite(a) and np.isfinite(b)) or a > b or a < lo or b > hi:
        raise ValueError(f"{name}=({a}, {b}) must satisfy {lo} <= low <= high <= {hi}")
    return (a, b)


_RANGE_LIMITS: dict[str, tuple[float, float]] = {
    "thermal_rms": (0.0, 1.0),
    "vacancy_fraction": (0.0, 0.5),
    "phonon_amplitude": (0.0, 1.0),
    "degraded_vacancy": (0.9, 0.999),
    "degraded_disorder": (0.0, 3.0),
    "rotation_deg": (-180.0, 180.0),
    "noise_level": (0.0, 1.0),
    "charge_fc": (0.01, 1000.0),
}


class GeneratorSettings(BaseModel):
    """Ranges of the random structural and detector parameters (uniform unless stated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_size: tuple[int, int] = Field(
        (51, 30), description="Supercell (cells along a, b) before the random size scale."
    )
    size_sigma: float = Field(
        0.2, ge=0.0, le=0.5, description="σ of the N(1, σ) supercell size scale (seed: 0.2)."
    )
    thermal_rms: Range = Field(
        (0.02, 0.15),
        description="Thermal rms displacement per component, Å (seed allowed up to 0.3).",
    )
    vacancy_fraction: Range = Field(
        (0.05, 0.20),
        description="Mo and Te vacancy fractions, drawn independently (seed: ≤ 0.2; from 0.05, "
        "the vacancy level the benchmarks count as a damage event).",
    )
    strain_max_normal: float = Field(0.1, ge=0, le=0.5, description="Max |ε_xx|, |ε_yy|.")
    strain_max_shear: float = Field(0.1, ge=0, le=0.5, description="Max |ε_xy|.")
    strain_min: float = Field(
        0.02, ge=0, le=0.1, description="Deform classes redraw until max |ε| ≥ this."
    )
    phonon_amplitude: Range = Field(
        (0.1, 0.3), description="Largest atomic displacement of the frozen phonon, Å."
    )
    phonon_min_inplane: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Only modes whose eigenvector is at least this in-plane (weight of x, y): "
        "a z-polarised mode leaves a [001] zone-axis pattern unchanged, so its frames would "
        "be indistinguishable from ref_2H.",
    )
    degraded_vacancy: Range = Field((0.9, 0.99), description="Vacant site fraction, degraded.")
    degraded_disorder: Range = Field(
        (0.5, 1.5), description="Amorphous rms displacement of the remaining atoms, Å."
    )
    rotation_deg: Range = Field(
        (0.0, 0.0),
        description="In-plane rotation, degrees (seed: ±60; 0 keeps frames aligned with "
        "the sample's own reference, as difference images need).",
    )
    noise_level: Range = Field((0.0, 0.5), description="Seed noise level (up to 50 %).")
    charge_fc: Range = Field(
        (5.0, 100.0), description="Bunch charge, fC (log-uniform): noise vs space-charge blur."
    )
    detector: DetectorModel = Field(default_factory=DetectorModel, description="Detector model.")
    grid_n: int = Field(261, description="Reciprocal grid size (odd).")
    grid_dq: float = Field(0.01, gt=0, description="Reciprocal grid spacing, 1/Å.")
    oversample: int = Field(
        1,
        description="Samples per pixel edge of the kinematic intensity (odd, 1 to 7): 1 "
        "samples each pixel's centre (the shipped scorer's training frames); 3 or more "
        "integrate the pixel as a detector does (see physics.pixel_intensity).",
    )

    @field_validator(*_RANGE_LIMITS, mode="before")
    @classmethod
    def _check_range(cls, value: Any, info: Any) -> Range:
        lo, hi = _RANGE_LIMITS[info.field_name]
        return _as_range(value, lo, hi, info.field_name)

    @field_validator("oversample")
    @classmethod
    def _check_oversample(cls, value: int) -> int:
        return check_oversample(value)

    @field_validator("base_size")
    @classmethod
    def _check_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 2:
            raise ValueError(f"base_size={value} must be at least (2, 2) cells")
        return value

    @property
    def grid(self) -> ReciprocalGrid:
        """The reciprocal grid the frames live on."""
        return ReciprocalGrid(self.grid_n, self.grid_dq)


COLUMNS: tuple[str, ...] = (
    "label",
    "phase",
    "x",
    "mo_vacancy",
    "te_vacancy",
    "strain_xx",
    "strain_yy",
    "strain_xy",
    "mode",
    "mode_frequency_cm1",
    "phonon_amplitude",
    "thermal_rms",
    "disorder_rms",
    "rotation_deg",
    "noise_level",
    "charge_fc",
    "scale",
    "size_a",
    "size_b",
    "n_atoms",
    "seed",
    "index",
)
"""Keys of a frame's parameters, and the columns of its row in a store
(see :func:`uedsteer.sim_devices.frame_store.params_to_rows`)."""


def mode_ids(material: Material = MATERIAL) -> list[str]:
    """Every phonon mode id used by the generator, ``"<phase>/<q>:<band>"``."""
    return material.mode_ids()


@lru_cache(maxsize=8)
def visible_modes(phase: str, min_inplane: float, material: Material = MATERIAL) -> tuple[str, ...]:
    """Mode ids of ``phase`` whose eigenvector is at least ``min_inplane`` in-plane."""
    table = material.modes(phase)
    return tuple(m for m in table.mode_ids() if table.inplane_fraction(m) >= min_inplane)


def check_label(label: str, material: Material = MATERIAL) -> int:
    """Index of ``label`` among the material's labels; ``ValueError`` naming the allowed ones."""
    labels = material.labels
    if label not in labels:
        raise ValueError(f"label={label!r} is not known; allowed: {', '.join(labels)}")
    return labels.index(label)


def _frame_params(
    label: str,
    rng: np.random.Generator,
    s: GeneratorSettings,
    x: float | None,
    material: Material = MATERIAL,
) -> dict:
    """Draw the structural and detector parameters of one frame."""
    start, end = material.phases
    kind = "interpolated" if label == INTERPOLATED else material.frame_class(label).kind
    phase = start if label == INTERPOLATED else material.frame_class(label).phase
    scale_size = float(np.clip(rng.normal(1.0, s.size_sigma), 0.5, 1.5))
    p: dict[str, Any] = {
        "label": label,
        "phase": phase,
        "x": 0.0,
        "mo_vacancy": 0.0,
        "te_vacancy": 0.0,
        "strain_xx": 0.0,
        "strain_yy": 0.0,
        "strain_xy": 0.0,
        "mode": "",
        "mode_frequency_cm1": 0.0,
        "phonon_amplitude": 0.0,
        "disorder_rms": 0.0,
        "size_a": max(2, int(round(s.base_size[0] * scale_size))),
        "size_b": max(2, int(round(s.base_size[1] * scale_size))),
        "thermal_rms": rng.uniform(*s.thermal_rms),
    }
    if kind == "vacancy":
        p["mo_vacancy"], p["te_vacancy"] = rng.uniform(*s.vacancy_fraction, size=2)
    elif kind == "deform":
        while True:
            eps = random_strain(rng, s.strain_max_normal, s.strain_max_shear)
            if np.abs(eps).max() >= s.strain_min:
                break
        p["strain_xx"], p["strain_yy"], p["strain_xy"] = eps[0, 0], eps[1, 1], eps[0, 1]
    elif kind == "phonon":
        table = material.modes(phase)
        ids = visible_modes(phase, s.phonon_min_inplane, material)
        mode = ids[rng.integers(len(ids))]
        p["mode"] = f"{phase}/{mode}"
        p["mode_frequency_cm1"] = table.frequency(mode)
        p["phonon_amplitude"] = rng.uniform(*s.phonon_amplitude)
    elif kind == "degraded":
        vac = rng.uniform(*s.degraded_vacancy)
        p["mo_vacancy"] = p["te_vacancy"] = vac
        p["disorder_rms"] = rng.uniform(*s.degraded_disorder)
    elif kind == "interpolated":
        p["x"] = float(rng.uniform(0.0, 1.0)) if x is None else float(x)
    p["rotation_deg"] = rng.uniform(*s.rotation_deg)
    p["noise_level"] = rng.uniform(*s.noise_level)
    lo, hi = np.log(s.charge_fc[0]), np.log(s.charge_fc[1])
    p["charge_fc"] = float(np.exp(rng.uniform(lo, hi)))
    p["scale"] = float(max(rng.gamma(2.0, 1.0), 0.1))
    if phase == end:
        p["x"] = 1.0
    return p


def render_structure(p: dict, rng: np.random.Generator, material: Material = MATERIAL):
    """Build the perturbed supercell described by a parameter dict (see :func:`_frame_params`).

    ``mo_vacancy`` and ``te_vacancy`` are the vacant fractions of the material's two
    ``vacancy_sites`` (Mo and Te for MoTe2).

    Returns
    -------
    ase.Atoms
    """
    atoms = material.supercell(material.phases[0], (p["size_a"], p["size_b"]), x=p["x"])
    if p["mode"]:
        atoms = material.add_phonon(atoms, p["mode"].split("/", 1)[1], p["phonon_amplitude"], rng)
    if p["strain_xx"] or p["strain_yy"] or p["strain_xy"]:
        eps = [[p["strain_xx"], p["strain_xy"]], [p["strain_xy"], p["strain_yy"]]]
        atoms = apply_strain(atoms, eps)
    if p["label"] != INTERPOLATED and material.frame_class(p["label"]).kind == "degraded":
        atoms = degrade(atoms, p["mo_vacancy"], p["disorder_rms"], rng)
    elif p["mo_vacancy"] or p["te_vacancy"]:
        sites = dict(zip(material.vacancy_sites, (p["mo_vacancy"], p["te_vacancy"]), strict=True))
        atoms = add_vacancies(atoms, sites, rng)
    atoms = add_thermal_displacements(atoms, p["thermal_rms"], rng)
    if p["rotation_deg"]:
        atoms = rotate_in_plane(atoms, p["rotation_deg"])
    return atoms


def _one_frame(
    label: str,
    index: int,
    seed: int,
    s: GeneratorSettings,
    x: float | None,
    material: Material = MATERIAL,
) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng([seed, material.labels.index(label), index])
    p = _frame_params(label, rng, s, x, material)
    atoms = render_structure(p, rng, material)
    intensity = pixel_intensity(atoms, s.grid, s.oversample, nthreads=1)
    frame = s.detector.render(
        intensity,
        rng,
        s.grid,
        charge_fc=p["charge_fc"],
        noise_level=p["noise_level"],
        scale=p["scale"],
    )
    p.update(n_atoms=len(atoms), seed=seed, index=index)
    return frame, {k: (float(v) if isinstance(v, np.floating) else v) for k, v in p.items()}


def _xs_for(label: str, n: int, x: float | Sequence[float] | None) -> list[float | None]:
    if x is None:
        return [None] * n
    if label != INTERPOLATED:
        raise ValueError(f"x= is only allowed for label '{INTERPOLATED}', not {label!r}")
    xs = np.broadcast_to(np.asarray(x, dtype=float), (n,)) if np.ndim(x) == 0 else np.asarray(x)
    if xs.shape != (n,):
        raise ValueError(f"x has {xs.size} values; n={n} frames need one value or n values")
    if np.any(~np.isfinite(xs)) or np.any(xs < 0) or np.any(xs > 1):
        raise ValueError(f"x values must lie in [0, 1]; got {xs.min()}…{xs.max()}")
    return [float(v) for v in xs]


def frames_at_indices(
    label: str,
    indices: Iterable[int],
    seed: int,
    settings: GeneratorSettings,
    xs: list[float | None],
    material: Material = MATERIAL,
) -> tuple[np.ndarray, list[dict]]:
    """Frames ``indices`` of one label, with validated settings and one x (or None) each."""
    frames, params = [], []
    for i, x in zip(indices, xs, strict=True):
        f, p = _one_frame(label, i, seed, settings, x, material)
        frames.append(f)
        params.append(p)
    return np.stack(frames), params


def generate_frames(
    label: str,
    n: int,
    seed: int = 0,
    *,
    x: float | Sequence[float] | None = None,
    start: int = 0,
    material: str | Material | None = None,
    **overrides: Any,
) -> tuple[np.ndarray, list[dict]]:
    """Generate raw detector frames of one label, in this process.

    Parameters
    ----------
    label : str
        One of the material's labels: a class name or ``"interpolated"`` (frames along its
        transformation path, e.g. 2H → 1T').
    n : int
        Number of frames (≥ 1).
    seed : int
        Data seed; frame i uses ``default_rng([seed, label_index, start + i])``.
    x : float or sequence of float, optional
        1T' fractions for ``"interpolated"`` frames (one value or n values); random otherwise.
    start : int
        Index of the first frame (lets a caller continue a sequence).
    material : str or Material, optional
        The material (default: MoTe2, see :mod:`uedsteer.sim_devices.materials`).
    **overrides
        Fields of :class:`GeneratorSettings`, e.g. ``noise_level=(0, 0)``,
        ``rotation_deg=(-60, 60)``, ``base_size=(20, 12)``.

    Returns
    -------
    frames : numpy.ndarray
        (n, 261, 261) float32 raw detector frames (counts).
    params : list of dict
        Every structural and detector parameter of each frame (keys: :data:`COLUMNS`).
    """
    material = get_material(material)
    check_label(label, material)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    settings = GeneratorSettings(**overrides)
    xs = _xs_for(label, int(n), x)
    return frames_at_indices(label, range(start, start + int(n)), int(seed), settings, xs, material)
