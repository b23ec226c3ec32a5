"""Train the crystal predictor on a crystal store (``uedsteer train crystal``).

The store is split **by material** (25 % of the materials are test materials, as in the
paper; a store that draws only some crystal systems trains only their space-group forests:
:func:`partial_store_rows`), the Bragg lists are featurized (the zone features by default),
the hierarchical models (the "compact" preset by default) are trained on the training
materials and evaluated on the test materials (:mod:`~uedsteer.surrogates.crystal.evaluation`):

* crystal-system accuracy of single patterns, and of 10-pattern aggregates per test material
  (the model's aggregation, and the paper's difference aggregation of the same 10 zone axes
  drawn without replacement, seeded);
* per crystal system: space-group accuracy of that system's sub-model on its own patterns
  (``given the system``, the paper's per-system figure) and end-to-end through the predicted
  system (``hierarchical``), and the median absolute error of a, b, c;
* confusion matrices as PNG and everything in ``crystal_metrics.json``;
* how textbook crystals read (:mod:`~uedsteer.surrogates.crystal.reference_structures`), and
  the model card ``MODEL_CARD.md`` (:mod:`~uedsteer.surrogates.crystal.card`).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from uedsteer.sim_devices.crystals.dataset import (
    STORE_OFFSET,
    CrystalDataset,
    split_by_material,
)
from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS, draws_every_system

from .bragg_lists import jitter_positions
from .card import write_model_card
from .convention import simulation_record
from .evaluation import evaluate, plot_confusion
from .fitting import ESTIMATOR_PRESETS
from .persistence import default_model_dir
from .predictor import CrystalPredictor
from .reference_structures import read_reference_structures


def _code_version() -> str:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def featurize(
    data: CrystalDataset | Sequence[np.ndarray],
    q_range: tuple[float, float] | None = None,
    orient: bool = True,
    features: str = "radial",
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of every pattern (of a data set, or of a sequence of Bragg lists) and the
    mask of usable ones (≥ 5 spots).

    The lists are prepared as a predictor prepares them (:func:`prepare_bragg`):
    ``q_range`` (q_min, q_max) crops each list to a detector's window (see
    :func:`~uedsteer.surrogates.crystal.bragg_lists.crop_bragg`), ``orient`` rotates it so its
    shortest spot lies along +x (:func:`~uedsteer.surrogates.crystal.bragg_lists.orient_bragg`).
    ``features`` picks the inputs as :class:`CrystalPredictor` does: ``"radial"`` (the
    paper's basis), ``"zone"`` (:func:`~uedsteer.surrogates.crystal.zone.zone_lattice_features`)
    or ``"radial+zone"``.
    """
    lists = data.bragg if isinstance(data, CrystalDataset) else data
    return CrystalPredictor(q_range=q_range, orient=orient, features=features).features(lists)


def store_specs(spec: dict) -> list[dict]:
    """Each store's configuration from a data set's ``spec`` (several stores: the first one's
    with the others under ``"also"``, as :func:`concatenate_datasets` writes it)."""
    first = {k: v for k, v in spec.items() if k != "also"}
    return [first, *spec.get("also", [])] if first else list(spec.get("also", []))


def partial_store_rows(data: CrystalDataset) -> np.ndarray:
    """Patterns of stores that draw only some crystal systems (``--set 'systems=[...]'``).

    Such a store adds data where a space-group forest needs it (cubic space groups, say), but
    it would bias the crystal-system and material classifiers towards its systems, move the
    lattice regressors' prior towards its cells and change the held-out set's mix, so
    :func:`train_crystal` uses all of its materials for those systems' space-group forests
    only.
    """
    specs = store_specs(data.spec)
    partial = [
        not draws_every_system(s.get("settings", {}).get("systems", CRYSTAL_SYSTEMS)) for s in specs
    ]
    if not any(partial):
        return np.zeros(len(data), dtype=bool)
    store = np.asarray(data.material) // STORE_OFFSET
    return np.asarray(partial)[np.clip(store, 0, len(partial) - 1)]


LATTICE_WEIGHTINGS = ("cell_size", "none")
"""How the lattice regressors weigh training patterns: ``"cell_size"`` (1/√atoms in the
material's cell, :func:`cell_size_weights`) or ``"none"`` (equally, the paper)."""


def cell_size_weights(data: CrystalDataset) -> np.ndarray:
    """Per-pattern weight 1/√(atoms in the material's conventional cell).

    A single zone-axis pattern often fits several lattices (the square [001] pattern of a
    4.08 Å FCC metal is also the [001] pattern of a 5.8 Å cell whose 200 reflection is
    absent), and a forest settles such cases by what its training data made common. The
    generated stores hold mostly large cells (cubic: median 16 atoms), while elements and
    binaries with a few atoms per cell are common among real crystals; this weighting moves
    that prior towards small cells. On the stores' test split it leaves the lattice errors
    as they were (cubic mean error of a 0.40 Å either way, small cells 0.43 → 0.33 Å) and it
    reads a gold nanoparticle scan (``uedsteer stem``, true 4.08 Å) at 4.12 Å instead of 4.76 Å.
    """
    from ase.formula import Formula

    atoms = {f: sum(Formula(str(f)).count().values()) for f in np.unique(data.formula)}
    return np.array([1.0 / np.sqrt(max(atoms[f], 1)) for f in data.formula])


def train_crystal(
    data: CrystalDataset,
    out: str | Path | None = None,
    report: str | Path | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    system_params: dict | None = None,
    space_group_params: dict | None = None,
    lattice_params: dict | None = None,
    n_jobs: int = -1,
    progress: bool = True,
    command: str = "",
    q_range: tuple[float, float] | None = None,
    features: str = "zone",
    lattice_weighting: str = "cell_size",
    estimators: str = "compact",
    reference: bool = True,
    position_jitter: float = 0.0,
) -> tuple[CrystalPredictor, dict]:
    """Split by material, featurize, train the hierarchy, evaluate, save model and report.

    Parameters
    ----------
    data : CrystalDataset
        All patterns of a crystal store.
    out : str or Path, optional
        Model folder (default: the user data directory, see :meth:`CrystalPredictor.load`).
    report : str or Path, optional
        Folder for ``crystal_metrics.json`` and the confusion PNGs (default: ``out``).
    test_fraction, seed : float, int
        Material-disjoint split.
    system_params, space_group_params, lattice_params : dict, optional
        Overrides of the preset's hyperparameters.
    n_jobs : int
        Parallel tree fits (−1: all cores).
    progress : bool
        Progress bar over the 13 forests.
    command : str
        The command line, recorded in the metrics.
    q_range : (float, float), optional
        Train on lists cropped to this |q| window (1/Å), e.g. ``(0.16, 1.3)`` for a model that
        reads UED frames; the predictor then crops every list it is given the same way.
    features : {"zone", "radial", "radial+zone"}
        Model inputs: the zone-lattice and symmetry features (:mod:`.zone`, default), the
        paper's radial basis, or both.
    lattice_weighting : {"cell_size", "none"}
        Training weights of the lattice regressors (:data:`LATTICE_WEIGHTINGS`).
    estimators : {"compact", "paper"}
        The preset (:data:`~uedsteer.surrogates.crystal.fitting.ESTIMATOR_PRESETS`): a boosted
        crystal-system classifier, forests with a few patterns a leaf and a learned aggregate
        over a material's patterns (with zone features), or the paper's forests and
        difference aggregation.
    reference : bool
        Read the textbook crystals
        (:mod:`~uedsteer.surrogates.crystal.reference_structures`) for the model card.
    position_jitter : float
        Largest rms error (1/Å per coordinate, ≥ 0) of the training lists' spot positions:
        each training list draws its own from 0 to this (:func:`.bragg_lists.jitter_positions`,
        seeded by ``seed``), so the model reads measured lists as well as exact ones; 0 trains
        on the exact simulated lists. The held-out figures are of exact lists.

    Returns
    -------
    tuple
        The trained predictor and the metrics dict.
    """
    if lattice_weighting not in LATTICE_WEIGHTINGS:
        raise ValueError(
            f"lattice_weighting={lattice_weighting!r} is not known; allowed: {LATTICE_WEIGHTINGS}"
        )
    if estimators not in ESTIMATOR_PRESETS:
        raise ValueError(
            f"estimators={estimators!r} is not known; allowed: {tuple(ESTIMATOR_PRESETS)}"
        )
    preset = ESTIMATOR_PRESETS[estimators]
    given = {
        "system_params": system_params,
        "space_group_params": space_group_params,
        "lattice_params": lattice_params,
    }
    params = {name: {**preset.get(name, {}), **(value or {})} for name, value in given.items()}
    if not (np.isfinite(position_jitter) and position_jitter >= 0):
        raise ValueError(f"position_jitter={position_jitter!r} must be >= 0 (1/Å)")
    partial = partial_store_rows(data)
    test = np.zeros(len(data), dtype=bool)
    test[~partial] = split_by_material(data.material[~partial], test_fraction, seed)[1]
    train = ~test
    t0 = time.perf_counter()
    feats, valid = featurize(data, q_range, features=features)
    train_feats, valid_train = feats, valid
    if position_jitter:
        # only the training lists are measured-like; the held-out figures stay exact
        rows = np.flatnonzero(train)
        moved = jitter_positions([data.bragg[i] for i in rows], (0.0, position_jitter), seed)
        train_feats, valid_train = feats.copy(), valid.copy()
        train_feats[rows], moved_valid = featurize(moved, q_range, features=features)
        valid_train[rows] &= moved_valid
    t_feat = time.perf_counter() - t0
    fit_rows = train & valid_train
    predictor = CrystalPredictor(
        **params,
        system_estimator=preset["system_estimator"],
        # the learned aggregate reads the zone features; with the radial basis alone, the paper's
        aggregation=preset.get("aggregation", "difference") if "zone" in features else "difference",
        n_jobs=n_jobs,
        random_state=seed,
        q_range=q_range,
        features=features,
    )
    t1 = time.perf_counter()
    predictor.fit(
        train_feats[fit_rows],
        data.system[fit_rows],
        data.space_group[fit_rows],
        data.lattice[fit_rows][:, :3],
        progress=progress,
        lattice_weight=(
            cell_size_weights(data)[fit_rows] if lattice_weighting == "cell_size" else None
        ),
        material=data.material[fit_rows],
        space_group_only=partial[fit_rows],
    )
    t_fit = time.perf_counter() - t1
    predictor.simulation_ = simulation_record(store_specs(data.spec))
    test_data = data.subset(test)
    metrics = evaluate(predictor, test_data, feats[test], valid[test], seed=seed)
    metrics.update(
        {
            "train_patterns": int(fit_rows.sum()),
            "train_materials": int(len(np.unique(data.material[fit_rows]))),
            "rejected_patterns_lt5_spots": int((~valid).sum()),
            "featurize_seconds": t_feat,
            "fit_seconds": t_fit,
            "data_spec": data.spec,
            "split": {"by": "material", "test_fraction": test_fraction, "seed": seed},
            "q_range": None if q_range is None else list(q_range),
            "features": features,
            "lattice_target": predictor.lattice_target,
            "lattice_weighting": lattice_weighting,
            "position_jitter": float(position_jitter),
            "estimators": estimators,
            "code_version": _code_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": command,
        }
    )
    if reference:
        metrics["reference_structures"] = read_reference_structures(predictor)
    metrics["model_folder"] = str(Path(out) if out is not None else default_model_dir())
    folder = predictor.save(metrics["model_folder"], metrics=metrics)
    report_dir = Path(report) if report is not None else Path(folder)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "crystal_metrics.json").write_text(json.dumps(metrics, indent=1))
    plot_confusion(
        np.array(metrics["confusion_single"]),
        CRYSTAL_SYSTEMS,
        f"crystal system, single pattern: {metrics['system_accuracy_single']:.1%}",
        report_dir / "crystal_confusion_single.png",
    )
    plot_confusion(
        np.array(metrics["confusion_aggregate"]),
        CRYSTAL_SYSTEMS,
        f"crystal system, {metrics['aggregate_patterns']}-pattern aggregate: "
        f"{metrics['system_accuracy_aggregate']:.1%}",
        report_dir / "crystal_confusion_aggregate.png",
    )
    write_model_card(folder, metrics.get("reference_structures"))
    return predictor, metrics
