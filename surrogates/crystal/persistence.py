"""Saving and loading the crystal predictor: skops models beside a JSON metadata file.

Models are saved with :mod:`skops.io`, ZIP-deflate compressed (about 6× smaller than
uncompressed, identical predictions; no pickle code execution on load), next to a JSON
metadata file that records the hyperparameters, the label classes, the featurizer's settings,
the simulation settings of the training lists and the SHA-256 of the model file; loading
accepts only scikit-learn and numpy types from the skops file, checks the hash and rebuilds the
predictor through its constructor (so its featurizer is validated).

Where :func:`load_predictor` looks without a folder: the user's model in
``<data dir>/crystal`` (:func:`default_model_dir`, written by ``uedsteer train crystal``) when
it is there, else the model shipped in the package (:data:`SHIPPED_MODEL_DIR`, made by
``make crystal-model``; its card is ``MODEL_CARD.md`` beside it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS

from .bragg_lists import INTENSITY_SUM
from .featurizer import FEATURE_SETS, CrystalFeaturizer
from .material_aggregate import AGGREGATE_PARAMS, MATERIAL_FEATURE_NAMES
from .zone import ZONE_FEATURE_NAMES

MODEL_FILE = "models.skops"
METADATA_FILE = "metadata.json"
CARD_FILE = "MODEL_CARD.md"
FORMAT_VERSION = 1
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "model"
"""The crystal model shipped in the package (``make crystal-model`` writes it)."""

MAKE_HINT = (
    "make a model: `uedsteer generate crystals --out data/crystals --n-materials 1000` "
    "(≈ 5–20 min on 2 cores), then `uedsteer train crystal --data data/crystals` (≈ 2–10 min; it "
    "writes {out}), then `CrystalPredictor.load()` or `uedsteer stem` use it"
)
"""The whole path to a crystal model, generate → train → use, with times (``{out}``: where
``uedsteer train crystal`` writes)."""

TRAIN_HINT = (
    "run `uedsteer generate crystals --out data/crystals` (≈ 5–20 min) then `uedsteer train "
    "crystal --data data/crystals` (≈ 2–10 min) to train and save the crystal models"
)

_TRUSTED_PREFIXES = ("sklearn.", "numpy.")


# ---------------------------------------------------------------------------------------------
# storage location


def data_dir() -> Path:
    """The user data folder of uedsteer.

    ``$UEDSTEER_DATA`` if set, else ``$XDG_DATA_HOME/uedsteer``, else
    ``~/.local/share/uedsteer``.
    """
    env = os.environ.get("UEDSTEER_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "uedsteer"


def default_model_dir() -> Path:
    """Default folder of the saved crystal models: ``data_dir() / "crystal"``."""
    return data_dir() / "crystal"


def _has_model(folder: Path) -> bool:
    return (folder / MODEL_FILE).is_file() and (folder / METADATA_FILE).is_file()


def model_source(folder: str | os.PathLike | None = None) -> Path:
    """The folder :func:`load_predictor` reads: ``folder`` if given, else the user's model
    (:func:`default_model_dir`) when it holds one, else :data:`SHIPPED_MODEL_DIR`."""
    if folder is not None:
        return Path(folder)
    user = default_model_dir()
    if _has_model(user) or not _has_model(SHIPPED_MODEL_DIR):
        return user
    return SHIPPED_MODEL_DIR


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_metadata(
    predictor: Any, metrics: Mapping[str, Any] | None, model_sha256: str | None = None
) -> dict[str, Any]:
    """The JSON metadata saved beside the models (what :func:`load_predictor` reads)."""
    import sklearn
    import skops

    model = predictor._check_fitted()
    return {
        "format_version": FORMAT_VERSION,
        "description": "uedsteer hierarchical crystal models (Gleason et al. 2024): crystal "
        "system -> per-system space group and lattice (a, b, c) in Å",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "crystal_systems": list(CRYSTAL_SYSTEMS),
        "trained_systems": list(predictor.trained_systems),
        "system_classes": [str(c) for c in model.classes_],
        "space_group_classes": {
            s: [int(g) for g in c] for s, c in predictor.space_group_classes_.items()
        },
        "hyperparameters": {
            "system_estimator": predictor.system_estimator,
            "system": predictor.system_params,
            "space_group": predictor.space_group_params,
            "lattice": predictor.lattice_params,
            "n_jobs": predictor.n_jobs,
            "random_state": predictor.random_state,
            "aggregation": predictor.aggregation,
            **(
                {
                    "aggregate": AGGREGATE_PARAMS,
                    "material_features": list(MATERIAL_FEATURE_NAMES),
                }
                if predictor.aggregate_model_ is not None
                else {}
            ),
        },
        "features": {
            "dq": predictor.dq,
            "n_radial": predictor.n_radial,
            "p_max": predictor.p_max,
            "n_features": predictor.n_features,
            "min_spots": predictor.min_spots,
            "q_range": None if predictor.q_range is None else list(predictor.q_range),
            "orient": predictor.orient,
            "feature_set": predictor.feature_set,
            "zone_features": list(predictor.zone_features),
            "lattice_target": predictor.lattice_target,
            "intensity_sum": INTENSITY_SUM,
            "ordering": "|tau| block then arg tau block, each m-major: index m*(p_max+1)+p",
        },
        "simulation": dict(predictor.simulation_),
        "training_sizes": predictor.training_sizes_,
        "files": {MODEL_FILE: {"sha256": model_sha256}} if model_sha256 else {},
        "metrics": dict(metrics) if metrics else {},
        "versions": {
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "skops": skops.__version__,
        },
    }


def save_predictor(
    predictor: Any,
    folder: str | os.PathLike | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Save a fitted predictor's forests (skops) and a JSON metadata file into ``folder``.

    Parameters
    ----------
    folder : path, optional
        Target folder (created if needed); default :func:`default_model_dir`.
    metrics : dict, optional
        JSON-serializable evaluation results to store in the metadata.

    Returns
    -------
    pathlib.Path
        The folder written.
    """
    predictor._check_fitted()
    target = Path(folder) if folder is not None else default_model_dir()
    target.mkdir(parents=True, exist_ok=True)
    import skops.io as sio

    payload = {
        "system": predictor.system_model_,
        "space_group": dict(predictor.space_group_models_),
        "lattice": dict(predictor.lattice_models_),
    }
    if predictor.aggregate_model_ is not None:
        payload["aggregate"] = predictor.aggregate_model_
    # write to temporary names first, so that an interrupted save leaves the old model
    fd, tmp_model = tempfile.mkstemp(dir=target, prefix=f".{MODEL_FILE}.", suffix=".tmp")
    os.close(fd)
    fd, tmp_meta = tempfile.mkstemp(dir=target, prefix=f".{METADATA_FILE}.", suffix=".tmp")
    os.close(fd)
    try:
        sio.dump(payload, tmp_model, compression=zipfile.ZIP_DEFLATED)
        meta = model_metadata(predictor, metrics, sha256_of(tmp_model))
        Path(tmp_meta).write_text(json.dumps(meta, indent=2))
        umask = os.umask(0)
        os.umask(umask)
        for tmp in (tmp_model, tmp_meta):  # mkstemp makes them private; a model is shared
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp_model, target / MODEL_FILE)
        os.replace(tmp_meta, target / METADATA_FILE)
    finally:
        for tmp in (tmp_model, tmp_meta):
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def load_predictor(cls: type, folder: str | os.PathLike | None = None) -> Any:
    """Load models saved by :func:`save_predictor` into a new ``cls`` (the crystal predictor).

    Only sklearn and numpy types are accepted from the skops file: the untrusted types it
    declares are checked against that list before loading, so no arbitrary code runs.

    Parameters
    ----------
    folder : path, optional
        Default (:func:`model_source`): the user's model in :func:`default_model_dir`
        (``$UEDSTEER_DATA/crystal``, else ``$XDG_DATA_HOME/uedsteer/crystal``, else
        ``~/.local/share/uedsteer/crystal``) when it is there, else the shipped model
        (:data:`SHIPPED_MODEL_DIR`).

    Raises
    ------
    FileNotFoundError
        If the folder lacks the model or metadata file; the one-line message says where it
        looked and the whole path to a model (generate → train → use, with times).
    ValueError
        If the files hold foreign types, an unknown format, a model file that does not match
        its recorded hash, or a featurizer setting that CrystalFeaturizer refuses.
    """
    source = model_source(folder)
    model_path, meta_path = source / MODEL_FILE, source / METADATA_FILE
    missing = [p.name for p in (model_path, meta_path) if not p.is_file()]
    if missing:
        out = str(source) if folder is None else f"{source} with --out {source}"
        where = "" if folder is None else "; or pass the folder that holds one"
        shipped = " and the package holds no shipped model" if folder is None else ""
        raise FileNotFoundError(
            f"no trained crystal model in {source} (missing {', '.join(missing)}){shipped}; "
            + MAKE_HINT.format(out=out)
            + where
        )
    meta = json.loads(meta_path.read_text())
    recorded = meta.get("files", {}).get(MODEL_FILE, {}).get("sha256")
    if recorded and sha256_of(model_path) != recorded:
        raise ValueError(
            f"{model_path} does not match the SHA-256 its metadata records ({recorded[:12]}…): "
            f"the file was changed or cut short; {TRAIN_HINT} again, or reinstall uedsteer for "
            "the shipped model"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{meta_path} has format_version {meta.get('format_version')!r}; this uedsteer "
            f"reads version {FORMAT_VERSION}; {TRAIN_HINT} again"
        )
    import skops.io as sio  # seconds of imports: only once the files are there

    untrusted = sio.get_untrusted_types(file=model_path)
    foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if foreign:
        raise ValueError(
            f"{model_path} declares types outside scikit-learn/numpy: {foreign}; refusing "
            "to load it"
        )
    payload = sio.load(model_path, trusted=untrusted)
    hyper, spec = meta["hyperparameters"], meta["features"]
    aggregation = str(hyper.get("aggregation", "difference"))
    expected = {"system", "space_group", "lattice"}
    if aggregation == "learned":
        expected.add("aggregate")
    if not isinstance(payload, dict) or set(payload) != expected:
        raise ValueError(f"{model_path} does not hold uedsteer crystal models")
    if aggregation == "learned" and hyper.get("material_features") != list(MATERIAL_FEATURE_NAMES):
        raise ValueError(
            f"{meta_path} was trained on other material features than this uedsteer computes; "
            f"{TRAIN_HINT} again"
        )
    feature_set = str(spec.get("feature_set", "radial"))
    if feature_set not in FEATURE_SETS:
        raise ValueError(
            f"{meta_path} names feature_set={feature_set!r}; this uedsteer knows "
            f"{FEATURE_SETS}; {TRAIN_HINT} again"
        )
    zone_features = tuple(spec.get("zone_features", []))
    unknown = set(zone_features) - set(ZONE_FEATURE_NAMES)
    if unknown:
        raise ValueError(
            f"{meta_path} names zone features {sorted(unknown)} this uedsteer does not "
            f"compute; {TRAIN_HINT} again"
        )
    q_range = spec.get("q_range")
    featurizer = CrystalFeaturizer(
        feature_set,
        orient=bool(spec.get("orient", False)),
        q_range=None if q_range is None else (float(q_range[0]), float(q_range[1])),
        zone_features=zone_features,
        dq=float(spec["dq"]),
        n_radial=int(spec["n_radial"]),
        p_max=int(spec["p_max"]),
        min_spots=int(spec["min_spots"]),
    )
    predictor = cls(
        system_estimator=str(hyper.get("system_estimator", "forest")),
        system_params=hyper["system"],
        space_group_params=hyper["space_group"],
        lattice_params=hyper["lattice"],
        n_jobs=hyper.get("n_jobs", -1),
        random_state=hyper.get("random_state"),
        featurizer=featurizer,
        # models saved before the scaled target existed learned (a, b, c) directly
        lattice_target=str(spec.get("lattice_target", "direct")),
        aggregation=aggregation,
    )
    predictor.system_model_ = payload["system"]
    predictor.space_group_models_ = dict(payload["space_group"])
    predictor.lattice_models_ = dict(payload["lattice"])
    predictor.aggregate_model_ = payload.get("aggregate")
    predictor.space_group_classes_ = {
        s: np.asarray(c, dtype=np.int64) for s, c in meta["space_group_classes"].items()
    }
    predictor.training_sizes_ = {k: int(v) for k, v in meta["training_sizes"].items()}
    predictor.simulation_ = dict(meta.get("simulation", {}))
    predictor.metadata_ = meta
    return predictor
