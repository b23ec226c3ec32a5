"""Synthetic UED frames of every structural class, in memory or as a resumable zarr store.

Each frame is drawn from its own generator ``np.random.default_rng([seed, label_index, i])``,
so a frame depends only on (seed, label, index): the same seed gives the same frames however
the work is split into chunks or workers.

Per frame (seed recipe, with the ranges of :class:`GeneratorSettings`):

1. supercell of ``base_size`` scaled by N(1, ``size_sigma``) (seed: 51 × 30 cells ≈ 9,000 atoms);
2. the label's perturbation: vacancies, strain, a frozen phonon, 2H → 1T' fraction x or
   degradation; thermal displacements for all; optional in-plane rotation;
3. kinematic intensity (finufft), then the detector model (charge-dependent blur, Poisson shot
   noise, the seed's noise up to 50 %, readout noise, Gamma(2, 1) intensity scale).

Store layout (zarr v3): root attributes ``uedsteer_dataset`` (format), ``config`` (everything
that determines the frames) and ``complete``; one group per label with ``frames``
(n, 261, 261) float32, ``params`` (n, F) float64 whose columns are listed in the attribute
``columns`` (text fields are codes into ``LABELS``, ``PHASES`` and ``mode_ids``), and ``done``
(one flag per chunk, set only after that chunk's frames and parameters are written).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .classes import INTERPOLATED, LABELS
from .cluster import dask_client
from .physics import (
    PHASES,
    DetectorModel,
    ReciprocalGrid,
    add_phonon_displacement,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    kinematic_intensity,
    load_modes,
    mote2_supercell,
    random_strain,
    rotate_in_plane,
)

FORMAT_VERSION = 1

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

    @field_validator(*_RANGE_LIMITS, mode="before")
    @classmethod
    def _check_range(cls, value: Any, info: Any) -> Range:
        lo, hi = _RANGE_LIMITS[info.field_name]
        return _as_range(value, lo, hi, info.field_name)

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
"""Columns of a frame's parameter row (see :func:`params_to_rows`)."""


def mode_ids() -> list[str]:
    """Every phonon mode id used by the generator, ``"<phase>/<q>:<band>"``."""
    return [f"{p}/{m}" for p in PHASES for m in load_modes(p).mode_ids()]


@lru_cache(maxsize=8)
def visible_modes(phase: str, min_inplane: float) -> tuple[str, ...]:
    """Mode ids of ``phase`` whose eigenvector is at least ``min_inplane`` in-plane."""
    table = load_modes(phase)
    return tuple(m for m in table.mode_ids() if table.inplane_fraction(m) >= min_inplane)


def _check_label(label: str) -> int:
    if label not in LABELS:
        raise ValueError(f"label={label!r} is not known; allowed: {', '.join(LABELS)}")
    return LABELS.index(label)


def _frame_params(
    label: str, rng: np.random.Generator, s: GeneratorSettings, x: float | None
) -> dict:
    """Draw the structural and detector parameters of one frame."""
    phase = "1T'" if label.endswith("_1Tp") else "2H"
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
    if label.startswith("vacancy"):
        p["mo_vacancy"], p["te_vacancy"] = rng.uniform(*s.vacancy_fraction, size=2)
    elif label.startswith("deform"):
        while True:
            eps = random_strain(rng, s.strain_max_normal, s.strain_max_shear)
            if np.abs(eps).max() >= s.strain_min:
                break
        p["strain_xx"], p["strain_yy"], p["strain_xy"] = eps[0, 0], eps[1, 1], eps[0, 1]
    elif label.startswith("phonon"):
        table = load_modes(phase)
        ids = visible_modes(phase, s.phonon_min_inplane)
        mode = ids[rng.integers(len(ids))]
        p["mode"] = f"{phase}/{mode}"
        p["mode_frequency_cm1"] = table.frequency(mode)
        p["phonon_amplitude"] = rng.uniform(*s.phonon_amplitude)
    elif label == "degraded":
        vac = rng.uniform(*s.degraded_vacancy)
        p["mo_vacancy"] = p["te_vacancy"] = vac
        p["disorder_rms"] = rng.uniform(*s.degraded_disorder)
    elif label == INTERPOLATED:
        p["x"] = float(rng.uniform(0.0, 1.0)) if x is None else float(x)
    p["rotation_deg"] = rng.uniform(*s.rotation_deg)
    p["noise_level"] = rng.uniform(*s.noise_level)
    lo, hi = np.log(s.charge_fc[0]), np.log(s.charge_fc[1])
    p["charge_fc"] = float(np.exp(rng.uniform(lo, hi)))
    p["scale"] = float(max(rng.gamma(2.0, 1.0), 0.1))
    if phase == "1T'":
        p["x"] = 1.0
    return p


def render_structure(p: dict, rng: np.random.Generator):
    """Build the perturbed supercell described by a parameter dict (see :func:`_frame_params`).

    Returns
    -------
    ase.Atoms
    """
    atoms = mote2_supercell("2H", (p["size_a"], p["size_b"]), x=p["x"])
    if p["mode"]:
        atoms = add_phonon_displacement(
            atoms, p["mode"].split("/", 1)[1], p["phonon_amplitude"], rng
        )
    if p["strain_xx"] or p["strain_yy"] or p["strain_xy"]:
        eps = [[p["strain_xx"], p["strain_xy"]], [p["strain_xy"], p["strain_yy"]]]
        atoms = apply_strain(atoms, eps)
    if p["label"] == "degraded":
        atoms = degrade(atoms, p["mo_vacancy"], p["disorder_rms"], rng)
    elif p["mo_vacancy"] or p["te_vacancy"]:
        atoms = add_vacancies(atoms, p["mo_vacancy"], p["te_vacancy"], rng)
    atoms = add_thermal_displacements(atoms, p["thermal_rms"], rng)
    if p["rotation_deg"]:
        atoms = rotate_in_plane(atoms, p["rotation_deg"])
    return atoms


def _one_frame(
    label: str, index: int, seed: int, s: GeneratorSettings, x: float | None
) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng([seed, LABELS.index(label), index])
    p = _frame_params(label, rng, s, x)
    atoms = render_structure(p, rng)
    intensity = kinematic_intensity(atoms, s.grid, nthreads=1)
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


def _generate(
    label: str,
    indices: Iterable[int],
    seed: int,
    settings: GeneratorSettings,
    xs: list[float | None],
) -> tuple[np.ndarray, list[dict]]:
    frames, params = [], []
    for i, x in zip(indices, xs, strict=True):
        f, p = _one_frame(label, i, seed, settings, x)
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
    **overrides: Any,
) -> tuple[np.ndarray, list[dict]]:
    """Generate raw detector frames of one label, in this process.

    Parameters
    ----------
    label : str
        One of :data:`~uedsteer.sim_devices.CLASSES` or ``"interpolated"`` (2H → 1T' path).
    n : int
        Number of frames (≥ 1).
    seed : int
        Data seed; frame i uses ``default_rng([seed, label_index, start + i])``.
    x : float or sequence of float, optional
        1T' fractions for ``"interpolated"`` frames (one value or n values); random otherwise.
    start : int
        Index of the first frame (lets a caller continue a sequence).
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
    _check_label(label)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    settings = GeneratorSettings(**overrides)
    xs = _xs_for(label, int(n), x)
    return _generate(label, range(start, start + int(n)), int(seed), settings, xs)


# --------------------------------------------------------------------------- store


def params_to_rows(params: Sequence[dict], modes: Sequence[str]) -> np.ndarray:
    """Encode parameter dicts as a float64 table with :data:`COLUMNS` (codes for text)."""
    rows = np.zeros((len(params), len(COLUMNS)))
    for r, p in enumerate(params):
        for c, key in enumerate(COLUMNS):
            v = p[key]
            if key == "label":
                v = LABELS.index(v)
            elif key == "phase":
                v = PHASES.index(v)
            elif key == "mode":
                v = modes.index(v) if v else -1
            rows[r, c] = v
    return rows


def rows_to_params(rows: np.ndarray, modes: Sequence[str]) -> list[dict]:
    """Inverse of :func:`params_to_rows`."""
    out = []
    for row in np.atleast_2d(rows):
        p: dict[str, Any] = dict(zip(COLUMNS, (float(v) for v in row), strict=True))
        p["label"] = LABELS[int(p["label"])]
        p["phase"] = PHASES[int(p["phase"])]
        p["mode"] = modes[int(p["mode"])] if p["mode"] >= 0 else ""
        for key in ("size_a", "size_b", "n_atoms", "seed", "index"):
            p[key] = int(p[key])
        out.append(p)
    return out


class DatasetSpec(BaseModel):
    """Everything that determines a stored data set (compared when a store is resumed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: tuple[str, ...] = Field(LABELS, description="Labels to generate.")
    n_per_label: int = Field(100, ge=1, description="Frames per label.")
    seed: int = Field(0, ge=0, description="Data seed.")
    chunk: int = Field(32, ge=1, le=4096, description="Frames per zarr chunk and per task.")
    settings: GeneratorSettings = Field(
        default_factory=GeneratorSettings, description="Parameter ranges and detector."
    )

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for label in value:
            _check_label(label)
        if len(set(value)) != len(value):
            raise ValueError(f"labels={value} has duplicates")
        return value


def _open_store(path: Path, spec: DatasetSpec):
    import zarr

    config = json.loads(spec.model_dump_json())
    config["modes"] = mode_ids()
    if path.exists():
        try:
            root = zarr.open_group(str(path), mode="r+")
            old = root.attrs.get("config")
        except Exception as err:  # not a zarr group at all
            raise ValueError(f"out={path} exists and is not a uedsteer data set") from err
        if old != config:
            raise ValueError(
                f"out={path} exists with a different configuration; choose another path or "
                "delete it (existing frames are kept as they are)"
            )
        return root
    root = zarr.open_group(str(path), mode="w")
    root.attrs.update({"uedsteer_dataset": FORMAT_VERSION, "config": config, "complete": False})
    g = spec.settings.grid
    n_chunks = -(-spec.n_per_label // spec.chunk)
    for label in spec.labels:
        grp = root.create_group(label)
        grp.create_array(
            "frames",
            shape=(spec.n_per_label, g.n, g.n),
            chunks=(spec.chunk, g.n, g.n),
            dtype="float32",
            fill_value=np.nan,
        )
        params = grp.create_array(
            "params",
            shape=(spec.n_per_label, len(COLUMNS)),
            chunks=(spec.chunk, len(COLUMNS)),
            dtype="float64",
            fill_value=np.nan,
        )
        params.attrs["columns"] = list(COLUMNS)
        grp.create_array(
            "done", shape=(n_chunks,), chunks=(n_chunks,), dtype="bool", fill_value=False
        )
    return root


def _chunk_task(label: str, lo: int, hi: int, seed: int, settings_json: str):
    settings = GeneratorSettings.model_validate_json(settings_json)
    frames, params = _generate(label, range(lo, hi), seed, settings, [None] * (hi - lo))
    return label, lo, frames, params_to_rows(params, mode_ids())


def write_dataset(
    out: str | Path,
    spec: DatasetSpec,
    scheduler: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
) -> Path:
    """Generate a data set into a chunked zarr store with Dask; resumable.

    Parameters
    ----------
    out : str or Path
        Store path (``.zarr``). If it exists with the same spec, finished chunks are skipped;
        with a different spec a ``ValueError`` is raised and nothing is touched.
    spec : DatasetSpec
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); default: a
        ``LocalCluster`` with ``n_workers`` single-threaded worker processes.
    n_workers : int
        Workers of the local cluster.
    progress : bool
        Show a tqdm progress bar (frames).

    Returns
    -------
    pathlib.Path
        The store path; its root attribute ``complete`` is True only when every chunk is done.
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    out = Path(out)
    root = _open_store(out, spec)
    todo = []
    for label in spec.labels:
        done = root[label]["done"][:]
        for k, flag in enumerate(done):
            if not flag:
                lo = k * spec.chunk
                todo.append((label, lo, min(lo + spec.chunk, spec.n_per_label)))
    total = len(spec.labels) * spec.n_per_label
    remaining = sum(hi - lo for _, lo, hi in todo)
    bar = tqdm(total=total, initial=total - remaining, unit="frame", disable=not progress)
    if todo:
        with dask_client(scheduler, n_workers) as client:
            settings_json = spec.settings.model_dump_json()
            futures = [
                client.submit(_chunk_task, label, lo, hi, spec.seed, settings_json, pure=False)
                for label, lo, hi in todo
            ]
            for fut in as_completed(futures):
                label, lo, frames, rows = fut.result()
                grp = root[label]
                grp["frames"][lo : lo + len(frames)] = frames
                grp["params"][lo : lo + len(frames)] = rows
                done = grp["done"][:]
                done[lo // spec.chunk] = True
                grp["done"][:] = done
                bar.update(len(frames))
                fut.release()
    bar.close()
    complete = all(bool(root[label]["done"][:].all()) for label in spec.labels)
    root.attrs["complete"] = complete
    root.attrs["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S") if complete else None
    return out


def load_dataset(
    path: str | Path, labels: Sequence[str] | None = None, allow_incomplete: bool = False
) -> tuple[np.ndarray, list[dict]]:
    """Read frames and parameters back from a store written by :func:`write_dataset`.

    Parameters
    ----------
    path : str or Path
    labels : sequence of str, optional
        Labels to read (default: all in the store, in store order).
    allow_incomplete : bool
        Read a store whose generation was interrupted (only finished chunks are returned).

    Returns
    -------
    frames : numpy.ndarray
        (N, n, n) float32.
    params : list of dict
    """
    import zarr

    root = zarr.open_group(str(path), mode="r")
    if root.attrs.get("uedsteer_dataset") != FORMAT_VERSION:
        raise ValueError(f"path={path} is not a uedsteer data set (format {FORMAT_VERSION})")
    if not root.attrs.get("complete") and not allow_incomplete:
        raise ValueError(
            f"path={path} is incomplete (generation was interrupted); re-run "
            "`uedsteer generate` with the same arguments to finish it, or pass "
            "allow_incomplete=True"
        )
    config = root.attrs["config"]
    modes = config["modes"]
    chunk = config["chunk"]
    frames, params = [], []
    for label in labels or config["labels"]:
        if label not in config["labels"]:
            raise ValueError(f"label={label!r} is not in this store; it has {config['labels']}")
        grp = root[label]
        for k, flag in enumerate(grp["done"][:]):
            if flag:
                sl = slice(k * chunk, min((k + 1) * chunk, config["n_per_label"]))
                frames.append(grp["frames"][sl])
                params.extend(rows_to_params(grp["params"][sl], modes))
    if not frames:
        return np.zeros((0, 0, 0), np.float32), []
    return np.concatenate(frames), params
