"""The zarr frame store: synthetic UED frames written chunk by chunk, resumable, read back.

The frames come from :mod:`uedsteer.sim_devices.frames`; frame i depends only on
(seed, label, i), so chunks can be written in any order, by any number of workers.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .chunked_store import config_differences, finished_at, run_chunk_tasks
from .frames import (
    COLUMNS,
    LABELS,
    PHASES,
    GeneratorSettings,
    check_label,
    frames_at_indices,
    mode_ids,
)

FORMAT_VERSION = 1


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
            check_label(label)
        if len(set(value)) != len(value):
            raise ValueError(f"labels={value} has duplicates")
        return value


def _config_of(spec: DatasetSpec) -> dict:
    """The configuration recorded in a store: the spec as JSON plus the phonon-mode table."""
    config = json.loads(spec.model_dump_json())
    config["modes"] = mode_ids()
    if config["settings"].get("oversample") == 1:
        # point-sampled stores are recorded as they were before the setting existed, so
        # that a store written then still resumes and grows
        del config["settings"]["oversample"]
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
    frames, params = frames_at_indices(label, range(lo, hi), seed, settings, [None] * (hi - lo))
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
