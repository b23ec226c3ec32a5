"""The crystal store on disk: chunked, resumable writing (Dask) and its metadata check.

Store layout (a folder): ``spec.json`` (everything that determines the data) and
``chunks/chunk_NNNNN.npz``, one per ``chunk`` materials, written atomically (temporary file,
then rename), so an interrupted run resumes by skipping finished chunks. Each chunk holds the
spots of all its patterns (``spots`` (S, 3) float32 qx, qy, I), ``offsets`` (P + 1) into them,
per pattern ``pattern_material`` (global material index) and ``zone_axis`` (P, 3), and per
material ``material`` (index), ``system`` (code into :data:`CRYSTAL_SYSTEMS`),
``space_group``, ``lattice`` (M, 6: a, b, c in Å, α, β, γ in degrees of the conventional
cell), ``n_atoms``, ``volume`` and ``formula``.

The chunks are scheduled by :func:`uedsteer.sim_devices.chunked_store.run_chunk_tasks`, the
runner the frame store uses too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..chunked_store import config_differences, finished_at, run_chunk_tasks
from .settings import CrystalDatasetSpec, CrystalGenSettings
from .simulate import simulate_material
from .systems import CRYSTAL_SYSTEMS

FORMAT_VERSION = 2
"""2: every material labelled by its own symmetry (:mod:`.symmetry`); 1: by the space group
it was drawn on, which some ``wyckoff`` and ``random`` materials exceed."""


def _old_format(path: Path, version: object) -> str:
    return (
        f"path={path} is a crystal store of format {version}, whose materials carry the space "
        f"group they were drawn on, not the symmetry they have (format {FORMAT_VERSION}); make "
        "it again with the same `uedsteer generate crystals` command and a new --out"
    )


def _chunk_path(out: Path, k: int) -> Path:
    return out / "chunks" / f"chunk_{k:05d}.npz"


def _chunk_task(out: str, k: int, lo: int, hi: int, seed: int, settings_json: str) -> int:
    """Simulate materials lo…hi−1 and write their chunk file atomically; returns #patterns."""
    from threadpoolctl import threadpool_limits

    settings = CrystalGenSettings.model_validate_json(settings_json)
    with threadpool_limits(1):  # one BLAS thread per worker: the eigensolves are small
        return _write_chunk(Path(out), k, lo, hi, seed, settings)


def _write_chunk(
    out: Path, k: int, lo: int, hi: int, seed: int, settings: CrystalGenSettings
) -> int:
    spots, offsets, pmat, axes = [], [0], [], []
    mats: dict[str, list] = {
        k_: []
        for k_ in (
            "material",
            "system",
            "space_group",
            "lattice",
            "n_atoms",
            "volume",
            "formula",
            "source",
            "tag",
        )
    }
    for i in range(lo, hi):
        m = simulate_material(i, seed, settings)
        info = m["info"]
        mats["material"].append(i)
        mats["system"].append(CRYSTAL_SYSTEMS.index(info["system"]))
        mats["space_group"].append(info["space_group"])
        mats["lattice"].append(info["lattice"])
        mats["n_atoms"].append(info["n_atoms"])
        mats["volume"].append(info["volume"])
        mats["formula"].append(info["formula"])
        mats["source"].append(info["source"])
        mats["tag"].append(info["tag"])
        for axis, bragg in zip(m["zone_axes"], m["bragg"], strict=True):
            spots.append(bragg)
            offsets.append(offsets[-1] + len(bragg))
            pmat.append(i)
            axes.append(axis)
    path = _chunk_path(out, k)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez_compressed(
        tmp,
        spots=np.concatenate(spots).astype(np.float32) if spots else np.zeros((0, 3), np.float32),
        offsets=np.asarray(offsets, np.int64),
        pattern_material=np.asarray(pmat, np.int64),
        zone_axis=np.asarray(axes, np.int64).reshape(-1, 3),
        material=np.asarray(mats["material"], np.int64),
        system=np.asarray(mats["system"], np.int64),
        space_group=np.asarray(mats["space_group"], np.int64),
        lattice=np.asarray(mats["lattice"], np.float64).reshape(-1, 6),
        n_atoms=np.asarray(mats["n_atoms"], np.int64),
        volume=np.asarray(mats["volume"], np.float64),
        formula=np.asarray(mats["formula"], dtype=str),
        source=np.asarray(mats["source"], dtype=str),
        tag=np.asarray(mats["tag"], dtype=str),
    )
    os.replace(tmp, path)
    return len(pmat)


def _mismatch_message(out: Path, stored: dict, asked: dict) -> str:
    """One line: each setting that differs from the store's, stored and asked, and the fix."""
    diff = config_differences(stored, asked)
    shown = ", ".join(
        f"{key} {json.dumps(old)} (asked: {json.dumps(new)})" for key, (old, new) in diff.items()
    )
    keep = " ".join(
        f"--set {key.removeprefix('settings.')}={json.dumps(old, separators=(',', ':'))}"
        if key.startswith("settings.")
        else f"--{key.replace('_', '-')} {old}"
        for key, (old, _) in diff.items()
    )
    more = (
        "; a crystal store keeps its number of materials: for more, write a second store "
        "(new --out, another --seed) and train on both with `uedsteer train crystal --data A,B`"
        if "n_materials" in diff
        else ""
    )
    return (
        f"out={out} exists with a different configuration: {shown}{more}; to resume it, give "
        f"its own {'setting' if len(diff) == 1 else 'settings'} ({keep}), or choose a new out "
        "(existing chunks are kept as they are)"
    )


def _open_store(out: Path, spec: CrystalDatasetSpec) -> None:
    config = json.loads(spec.model_dump_json())
    meta = out / "spec.json"
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not out.is_dir():
            raise ValueError(f"out={out} is a file; give a new folder for the crystal store")
        if not meta.exists():
            raise ValueError(
                f"out={out} exists and is not a uedsteer crystal data set; give a new folder"
            )
        old = json.loads(meta.read_text())
        if old.get("uedsteer_crystals") != FORMAT_VERSION:
            raise ValueError(_old_format(out, old.get("uedsteer_crystals")))
        if old.get("config") != config:
            raise ValueError(_mismatch_message(out, old.get("config") or {}, config))
        return
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"uedsteer_crystals": FORMAT_VERSION, "config": config}, indent=1))


def write_crystal_dataset(
    out: str | Path,
    spec: CrystalDatasetSpec,
    scheduler: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
) -> Path:
    """Generate random crystals and their Bragg lists into a resumable store with Dask.

    Parameters
    ----------
    out : str or Path
        Store folder. If it exists with the same spec, finished chunks are skipped; with a
        different spec (``n_materials`` included: a crystal store does not grow) a
        ``ValueError`` naming each differing setting is raised and nothing is touched.
    spec : CrystalDatasetSpec
        Number of materials, seed, chunk size and simulation settings.
    scheduler, n_workers, progress
        Where the chunks run and whether a progress bar (materials) shows, as in
        :func:`~uedsteer.sim_devices.chunked_store.run_chunk_tasks`.

    Returns
    -------
    pathlib.Path
        The store folder; ``spec.json`` gets ``complete: true`` when every chunk is written.
    """
    out = Path(out)
    _open_store(out, spec)
    n_chunks = -(-spec.n_materials // spec.chunk)
    # materials lo…hi−1 of each unfinished chunk k
    todo = {
        k: (k * spec.chunk, min((k + 1) * spec.chunk, spec.n_materials))
        for k in range(n_chunks)
        if not _chunk_path(out, k).exists()
    }
    settings_json = spec.settings.model_dump_json()
    where = str(out.resolve())
    run_chunk_tasks(
        _chunk_task,
        [((where, k, lo, hi, spec.seed, settings_json), hi - lo) for k, (lo, hi) in todo.items()],
        total=spec.n_materials,
        unit="material",
        scheduler=scheduler,
        n_workers=n_workers,
        progress=progress,
    )
    complete = all(_chunk_path(out, k).exists() for k in range(n_chunks))
    meta = json.loads((out / "spec.json").read_text())
    meta["complete"] = complete
    meta["finished_at"] = finished_at(complete)
    (out / "spec.json").write_text(json.dumps(meta, indent=1))
    return out


def check_crystal_store(path: str | Path, allow_incomplete: bool = False) -> dict:
    """The metadata of a crystal store (``spec.json``), after checking it; reads nothing else.

    Parameters
    ----------
    path : str or Path
        Store folder written by :func:`write_crystal_dataset`.
    allow_incomplete : bool
        Accept a store whose generation has not finished.

    Returns
    -------
    dict
        ``config`` (the spec), ``complete`` and ``finished_at``.

    Raises
    ------
    FileNotFoundError
        If the folder is not a crystal store (says how to make one).
    ValueError
        If the store is incomplete and ``allow_incomplete`` is False, or of an older format
        (its labels are the drawn space groups: says to make it again).
    """
    path = Path(path)
    meta_path = path / "spec.json"
    meta = None
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = None
    if not isinstance(meta, dict) or "uedsteer_crystals" not in meta:
        what = "does not exist" if not path.exists() else "is not a crystal data set"
        raise FileNotFoundError(
            f"path={path} {what}; make one with `uedsteer generate crystals --out {path}`"
        )
    if meta["uedsteer_crystals"] != FORMAT_VERSION:
        raise ValueError(_old_format(path, meta["uedsteer_crystals"]))
    if not meta.get("complete") and not allow_incomplete:
        raise ValueError(
            f"path={path} is incomplete; resume it with the same `uedsteer generate crystals` "
            "command, or pass allow_incomplete=True"
        )
    return meta
