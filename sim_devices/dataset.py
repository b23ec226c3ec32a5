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

A store grows: asked for more frames per label than it holds (``n_per_label``) with every other
setting the same, :func:`write_dataset` enlarges its arrays and generates only the new frames.
Frame i depends only on (seed, label, i), so the frames already stored stay as they are, bit for
bit, and the new ones are the frames a store made at the larger size from the start would hold.
A store never shrinks, and any other difference (seed, chunk, labels, a generator setting, the
phonon-mode table) is refused with the settings that differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .chunked_store import config_differences, finished_at, run_chunk_tasks
from .materials import INTERPOLATED, Material, get_material
from .physics import (
    DetectorModel,
    ReciprocalGrid,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    kinematic_intensity,
    random_strain,
    rotate_in_plane,
)

MATERIAL = get_material()
"""The material of the stores (in-memory frames take any material)."""
LABELS = MATERIAL.labels
PHASES = MATERIAL.phases

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


def mode_ids(material: Material = MATERIAL) -> list[str]:
    """Every phonon mode id used by the generator, ``"<phase>/<q>:<band>"``."""
    return material.mode_ids()


@lru_cache(maxsize=8)
def visible_modes(phase: str, min_inplane: float, material: Material = MATERIAL) -> tuple[str, ...]:
    """Mode ids of ``phase`` whose eigenvector is at least ``min_inplane`` in-plane."""
    table = material.modes(phase)
    return tuple(m for m in table.mode_ids() if table.inplane_fraction(m) >= min_inplane)


def _check_label(label: str, material: Material = MATERIAL) -> int:
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
    material: Material = MATERIAL,
) -> tuple[np.ndarray, list[dict]]:
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
    _check_label(label, material)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    settings = GeneratorSettings(**overrides)
    xs = _xs_for(label, int(n), x)
    return _generate(label, range(start, start + int(n)), int(seed), settings, xs, material)


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


def _config_of(spec: DatasetSpec) -> dict:
    """The configuration recorded in a store: the spec as JSON plus the phonon-mode table."""
    config = json.loads(spec.model_dump_json())
    config["modes"] = mode_ids()
    return config


def _cli_option(key: str, value: Any) -> str:
    """How a configuration entry is given to ``uedsteer generate``."""
    if key.startswith("settings."):
        return f"--set {key.removeprefix('settings.')}={json.dumps(value, separators=(',', ':'))}"
    if key == "labels":
        return f"--labels {','.join(value)}"
    return f"--{key.replace('_', '-')} {value}"


def _mismatch_message(path: Path, diff: dict[str, tuple[Any, Any]]) -> str:
    """One line: each differing setting with its stored and asked values, and the way out."""
    n_old, n_new = diff.get("n_per_label", (0, 0))
    if n_new > n_old:  # a store may grow: not what blocks it
        diff = {k: v for k, v in diff.items() if k != "n_per_label"}
    shown = ", ".join(
        f"{key} {json.dumps(old)} (asked: {json.dumps(new)})"
        for key, (old, new) in diff.items()
        if key != "modes"
    )
    if "modes" in diff:
        shown += (", " if shown else "") + "the phonon-mode table (made by another uedsteer)"
        return f"out={path} exists with a different configuration: {shown}; choose a new out"
    # the stored value of each difference, except a larger n_per_label (the store can grow)
    keep = [_cli_option(k, old) for k, (old, _) in diff.items() if k != "n_per_label"]
    if n_new < n_old:
        shown += "; a store never shrinks"
        keep.append(_cli_option("n_per_label", n_old) + " or more")
    return (
        f"out={path} exists with a different configuration: {shown}; to resume or extend it, "
        f"give its own {'setting' if len(keep) == 1 else 'settings'} ({' '.join(keep)}), "
        "or choose a new out (existing frames are kept as they are)"
    )


def _grow(root: Any, spec: DatasetSpec, config: dict) -> None:
    """Enlarge every label of a store to ``spec.n_per_label`` frames; then record the config.

    The arrays grow first and the configuration is written last, so an interrupted growth is
    redone by the next run. A finished short last chunk is marked unfinished, with the group
    attribute ``kept_until`` (the old ``n_per_label``): its stored frames stay and only its
    new rows are generated.
    """
    n, chunk = spec.n_per_label, spec.chunk
    n_chunks = -(-n // chunk)
    old_n = root.attrs["config"]["n_per_label"]
    g = spec.settings.grid
    for label in spec.labels:
        grp = root[label]
        if grp["frames"].shape[0] < n:
            grp["frames"].resize((n, g.n, g.n))
            grp["params"].resize((n, len(COLUMNS)))
        if grp["done"].shape[0] < n_chunks:
            grp["done"].resize((n_chunks,))
        done = grp["done"][:]
        if old_n % chunk and done[old_n // chunk]:
            grp.attrs["kept_until"] = old_n
            done[old_n // chunk] = False
            grp["done"][:] = done
    root.attrs.update({"config": config, "complete": False, "finished_at": None})


def _open_store(path: Path, spec: DatasetSpec):
    import zarr

    config = _config_of(spec)
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        if not path.is_dir():
            raise ValueError(f"out={path} is a file; give a new folder for the store (.zarr)")
        try:
            root = zarr.open_group(str(path), mode="r+")
            old = root.attrs.get("config")
        except Exception as err:  # not a zarr group at all
            raise ValueError(
                f"out={path} exists and is not a uedsteer data set; give a new folder"
            ) from err
        if root.attrs.get("uedsteer_dataset") != FORMAT_VERSION or not isinstance(old, dict):
            raise ValueError(f"out={path} exists and is not a uedsteer data set; give a new folder")
        if old == config:
            return root
        diff = config_differences(old, config)
        if set(diff) == {"n_per_label"} and config["n_per_label"] > old["n_per_label"]:
            _grow(root, spec, config)
            return root
        raise ValueError(_mismatch_message(path, diff))
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
        Store path (``.zarr``). If it exists with the same spec, finished chunks are skipped.
        If only ``n_per_label`` is larger, the store grows: its frames stay as they are and
        only the new ones are generated. With any other difference a ``ValueError`` naming
        each differing setting is raised and nothing is touched.
    spec : DatasetSpec
    scheduler, n_workers, progress
        Where the chunks run and whether a progress bar (frames) shows, as in
        :func:`~uedsteer.sim_devices.chunked_store.run_chunk_tasks`.

    Returns
    -------
    pathlib.Path
        The store path; its root attribute ``complete`` is True only when every chunk is done.
    """
    out = Path(out)
    root = _open_store(out, spec)
    n_chunks = -(-spec.n_per_label // spec.chunk)
    todo = []
    for label in spec.labels:
        grp = root[label]
        kept = grp.attrs.get("kept_until", 0)  # rows a grown store held in its short chunk
        for k in np.flatnonzero(~grp["done"][:n_chunks]):
            lo, hi = int(k) * spec.chunk, min((int(k) + 1) * spec.chunk, spec.n_per_label)
            todo.append((label, kept if lo < kept < hi else lo, hi))

    def store(result: tuple) -> None:  # write a finished chunk, then mark it done
        label, lo, frames, rows = result
        grp = root[label]
        grp["frames"][lo : lo + len(frames)] = frames
        grp["params"][lo : lo + len(frames)] = rows
        done = grp["done"][:]
        done[lo // spec.chunk] = True
        grp["done"][:] = done

    settings_json = spec.settings.model_dump_json()
    run_chunk_tasks(
        _chunk_task,
        [((label, lo, hi, spec.seed, settings_json), hi - lo) for label, lo, hi in todo],
        total=len(spec.labels) * spec.n_per_label,
        unit="frame",
        on_result=store,
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
    )
    complete = all(bool(root[label]["done"][:n_chunks].all()) for label in spec.labels)
    root.attrs["complete"] = complete
    root.attrs["finished_at"] = finished_at(complete)
    return out


def check_store(
    path: str | Path, labels: Sequence[str] = (), allow_incomplete: bool = False
) -> dict:
    """The configuration of a store written by :func:`write_dataset`, after checking it.

    Cheap (reads the store's attributes only): lets a command refuse a wrong store before any
    heavy work.

    Parameters
    ----------
    path : str or Path
    labels : sequence of str
        Labels the store must hold.
    allow_incomplete : bool
        Accept a store whose generation was interrupted.

    Returns
    -------
    dict
        The recorded configuration (labels, n_per_label, seed, chunk, settings, modes).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a store, is incomplete or lacks one of ``labels``; the message says what
        to run.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"path={path} does not exist; make it with `uedsteer generate --out {path}`"
        )
    try:
        attrs = zarr.open_group(str(path), mode="r").attrs
        fmt, config, complete = (
            attrs.get("uedsteer_dataset"),
            attrs.get("config"),
            attrs.get("complete"),
        )
    except Exception:  # a file, or a folder that is no zarr group
        fmt, config, complete = None, None, None
    if fmt != FORMAT_VERSION or not isinstance(config, dict):
        raise ValueError(
            f"path={path} is not a uedsteer data set (format {FORMAT_VERSION}); make one with "
            "`uedsteer generate`"
        )
    if not complete and not allow_incomplete:
        raise ValueError(
            f"path={path} is incomplete (generation was interrupted); re-run "
            "`uedsteer generate` with the same arguments to finish it, or pass "
            "allow_incomplete=True"
        )
    missing = [label for label in labels if label not in config["labels"]]
    if missing:
        raise ValueError(
            f"path={path} lacks the labels {', '.join(missing)}: it has "
            f"{', '.join(config['labels'])}"
        )
    return config


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

    config = check_store(path, labels or (), allow_incomplete)
    root = zarr.open_group(str(path), mode="r")
    modes = config["modes"]
    chunk = config["chunk"]
    frames, params = [], []
    for label in labels or config["labels"]:
        grp = root[label]
        for k, flag in enumerate(grp["done"][:]):
            if flag:
                sl = slice(k * chunk, min((k + 1) * chunk, config["n_per_label"]))
                frames.append(grp["frames"][sl])
                params.extend(rows_to_params(grp["params"][sl], modes))
    if not frames:
        return np.zeros((0, 0, 0), np.float32), []
    return np.concatenate(frames), params
