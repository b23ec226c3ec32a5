"""Train and evaluate the crystal predictor on a crystal store (``uedsteer train crystal``).

The store is split **by material** (25 % of the materials are test materials, as in the
paper), the Bragg lists are featurized with :func:`radial_basis`, the hierarchical forests
are trained on the training materials and evaluated on the test materials:

* crystal-system accuracy of single patterns, and of 10-pattern aggregates per test material
  (difference aggregation over 10 zone axes drawn without replacement, seeded);
* per crystal system: space-group accuracy of that system's sub-model on its own patterns
  (``given the system``, the paper's per-system figure) and end-to-end through the predicted
  system (``hierarchical``), and the median absolute error of a, b, c;
* confusion matrices as PNG and everything in ``crystal_metrics.json``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from uedsteer.sim_devices.crystal_dataset import CrystalDataset, split_by_material
from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS

from .persistence import default_model_dir
from .predictor import CrystalPredictor
from .votes import difference_aggregate


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
    data: CrystalDataset,
    q_range: tuple[float, float] | None = None,
    orient: bool = True,
    features: str = "radial",
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of every pattern and the mask of usable ones (≥ 5 spots).

    The lists are prepared as a predictor prepares them (:func:`prepare_bragg`):
    ``q_range`` (q_min, q_max) crops each list to a detector's window (see
    :func:`~uedsteer.surrogates.crystal.bragg_lists.crop_bragg`), ``orient`` rotates it so its
    shortest spot lies along +x (:func:`~uedsteer.surrogates.crystal.bragg_lists.orient_bragg`).
    ``features`` picks the inputs as :class:`CrystalPredictor` does: ``"radial"`` (the
    paper's basis), ``"zone"`` (:func:`~uedsteer.surrogates.crystal.zone.zone_lattice_features`)
    or ``"radial+zone"``.
    """
    return CrystalPredictor(q_range=q_range, orient=orient, features=features).features(data.bragg)


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


def confusion_matrix(true: np.ndarray, pred: np.ndarray, labels: tuple) -> np.ndarray:
    """Counts (rows: true label, columns: predicted label) in the order of ``labels``."""
    index = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(true, pred, strict=True):
        if t in index and p in index:
            m[index[t], index[p]] += 1
    return m


def aggregate_draws(material: np.ndarray, n_patterns: int, seed: int) -> list[np.ndarray]:
    """Indices of ``n_patterns`` patterns per material (all it has if fewer), drawn without
    replacement with ``seed``, one array per material in material order."""
    rng = np.random.default_rng(seed)
    draws = []
    for m in np.unique(material):
        idx = np.flatnonzero(material == m)
        draws.append(rng.choice(idx, size=min(n_patterns, len(idx)), replace=False))
    return draws


def aggregate_space_group(
    predictor: CrystalPredictor,
    features: np.ndarray,
    material: np.ndarray,
    space_group: np.ndarray,
    lattice: np.ndarray,
    system: str,
    n_patterns: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Space group and lattice of ``n_patterns``-pattern aggregates of one system's materials.

    ``features``, ``material``, ``space_group`` and ``lattice`` (a, b, c) hold that system's
    valid test patterns. Returns the aggregate space-group accuracy through ``system``'s
    models (system given) and through the aggregated system (hierarchical, the paper's
    figure), and the median absolute error of the aggregated lattice a (system given).
    """
    given, hier, err_a = [], [], []
    for pick in aggregate_draws(material, n_patterns, seed):
        known = predictor.predict_aggregate(features=features[pick], route_to=system)
        # the hierarchy routes to the aggregated system: the same result when that is `system`
        routed = (
            known
            if known.crystal_system == system
            else predictor.predict_aggregate(features=features[pick])
        )
        given.append(known.space_group == space_group[pick[0]])
        hier.append(routed.space_group == space_group[pick[0]])
        err_a.append(abs(known.lattice[0] - lattice[pick[0], 0]))
    return {
        "space_group_aggregate_given_system": float(np.mean(given)),
        "space_group_aggregate_hierarchical": float(np.mean(hier)),
        "lattice_mae_a_aggregate": float(np.median(err_a)),
    }


def aggregate_accuracy(
    predictor: CrystalPredictor,
    votes: np.ndarray,
    material: np.ndarray,
    true_system: np.ndarray,
    n_patterns: int = 10,
    seed: int = 0,
) -> tuple[float, np.ndarray, int]:
    """Crystal-system accuracy of difference aggregates of ``n_patterns`` per material.

    Parameters
    ----------
    predictor : CrystalPredictor
        Only its class order is used (``votes`` are already computed).
    votes : (P, 6) tree votes of the valid test patterns.
    material : (P,) material index of each pattern; ``true_system`` (P,) its system.
    n_patterns : int
        Patterns per aggregate (a material with fewer uses all it has).
    seed : int
        Seed of the draw of patterns.

    Returns
    -------
    tuple
        (accuracy, confusion matrix, number of materials).
    """
    trues, preds = [], []
    for pick in aggregate_draws(material, n_patterns, seed):
        label, _, _ = difference_aggregate(votes[pick], CRYSTAL_SYSTEMS)
        trues.append(true_system[pick[0]])
        preds.append(label)
    trues_a, preds_a = np.array(trues), np.array(preds)
    return (
        float(np.mean(trues_a == preds_a)),
        confusion_matrix(trues_a, preds_a, CRYSTAL_SYSTEMS),
        len(trues),
    )


def plot_confusion(matrix: np.ndarray, labels: tuple, title: str, path: Path) -> Path:
    """Row-normalized confusion matrix as a PNG (counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    frac = matrix / rows
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{matrix[i, j]}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluate(
    predictor: CrystalPredictor,
    data: CrystalDataset,
    features: np.ndarray,
    valid: np.ndarray,
    n_aggregate: int = 10,
    seed: int = 0,
) -> dict:
    """Every test figure of the issue on one material-disjoint test set.

    Returns
    -------
    dict
        ``system_accuracy_single``, ``system_accuracy_aggregate``, per-class figures,
        ``space_group`` per system (``given_system`` and ``hierarchical`` accuracy, pattern
        counts), ``lattice_mae`` per system (a, b, c in Å, median absolute error) and the
        confusion matrices as lists.
    """
    X = features[valid]
    sys_true = data.system[valid]
    sg_true = data.space_group[valid]
    lat_true = data.lattice[valid][:, :3]
    mat = data.material[valid]
    pred = predictor.predict(features=X)
    single = float(np.mean(pred.crystal_system == sys_true))
    off_zone = np.all(data.zone_axis[valid] == 0, axis=1)  # random orientations: [0 0 0]
    by_orientation = {
        name: float(np.mean(pred.crystal_system[rows] == sys_true[rows]))
        for name, rows in (("zone_axis", ~off_zone), ("random_orientation", off_zone))
        if rows.any()
    }
    cm_single = confusion_matrix(sys_true, pred.crystal_system, CRYSTAL_SYSTEMS)
    agg_acc, cm_agg, n_mat = aggregate_accuracy(
        predictor, pred.system_votes, mat, sys_true, n_patterns=n_aggregate, seed=seed
    )
    per_system: dict[str, dict] = {}
    for system in CRYSTAL_SYSTEMS:
        rows = sys_true == system
        if not rows.any():
            continue
        entry: dict[str, float | int] = {
            "patterns": int(rows.sum()),
            "materials": int(len(np.unique(mat[rows]))),
            "system_recall_single": float(np.mean(pred.crystal_system[rows] == system)),
            "space_group_hierarchical": float(np.mean(pred.space_group[rows] == sg_true[rows])),
        }
        if system in predictor.trained_systems:
            sub = predictor.predict(features=X[rows], route_to=system)
            entry["space_group_given_system"] = float(np.mean(sub.space_group == sg_true[rows]))
            err = np.abs(sub.lattice - lat_true[rows])
            for k, name in enumerate("abc"):
                entry[f"lattice_mae_{name}"] = float(np.median(err[:, k]))
            entry.update(
                aggregate_space_group(
                    predictor,
                    X[rows],
                    mat[rows],
                    sg_true[rows],
                    lat_true[rows],
                    system,
                    n_aggregate,
                    seed,
                )
            )
        per_system[system] = entry
    return {
        "test_patterns": int(valid.sum()),
        "test_patterns_rejected": int((~valid).sum()),
        "test_materials": int(len(np.unique(mat))),
        "system_accuracy_single": single,
        "system_accuracy_single_by_orientation": by_orientation,
        "system_accuracy_aggregate": agg_acc,
        "aggregate_patterns": n_aggregate,
        "aggregate_materials": n_mat,
        "per_system": per_system,
        "confusion_single": cm_single.tolist(),
        "confusion_aggregate": cm_agg.tolist(),
        "mean_confidence_correct": float(
            np.mean(pred.system_confidence[pred.crystal_system == sys_true])
        ),
        "mean_confidence_wrong": float(
            np.mean(pred.system_confidence[pred.crystal_system != sys_true])
        )
        if np.any(pred.crystal_system != sys_true)
        else float("nan"),
    }


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
    features: str = "radial",
    lattice_weighting: str = "cell_size",
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
        Overrides of the paper's forest hyperparameters.
    n_jobs : int
        Parallel tree fits (−1: all cores).
    progress : bool
        Progress bar over the 13 forests.
    command : str
        The command line, recorded in the metrics.
    q_range : (float, float), optional
        Train on lists cropped to this |q| window (1/Å), e.g. ``(0.16, 1.3)`` for a model that
        reads UED frames; the predictor then crops every list it is given the same way.
    features : {"radial", "zone", "radial+zone"}
        Model inputs: the paper's radial basis, the zone-lattice and symmetry features
        (:mod:`.zone`), or both.
    lattice_weighting : {"cell_size", "none"}
        Training weights of the lattice regressors (:data:`LATTICE_WEIGHTINGS`).

    Returns
    -------
    tuple
        The trained predictor and the metrics dict.
    """
    if lattice_weighting not in LATTICE_WEIGHTINGS:
        raise ValueError(
            f"lattice_weighting={lattice_weighting!r} is not known; allowed: {LATTICE_WEIGHTINGS}"
        )
    t0 = time.perf_counter()
    feats, valid = featurize(data, q_range, features=features)
    t_feat = time.perf_counter() - t0
    train, test = split_by_material(data.material, test_fraction=test_fraction, seed=seed)
    fit_rows = train & valid
    predictor = CrystalPredictor(
        system_params=system_params,
        space_group_params=space_group_params,
        lattice_params=lattice_params,
        n_jobs=n_jobs,
        random_state=seed,
        q_range=q_range,
        features=features,
    )
    t1 = time.perf_counter()
    predictor.fit(
        feats[fit_rows],
        data.system[fit_rows],
        data.space_group[fit_rows],
        data.lattice[fit_rows][:, :3],
        progress=progress,
        lattice_weight=(
            cell_size_weights(data)[fit_rows] if lattice_weighting == "cell_size" else None
        ),
    )
    t_fit = time.perf_counter() - t1
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
            "code_version": _code_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": command,
        }
    )
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
    return predictor, metrics


def format_metrics(metrics: dict) -> str:
    """The metrics as the table the CLI and the benchmark print."""
    lines = [
        f"test: {metrics['test_patterns']} patterns of {metrics['test_materials']} materials "
        f"(material-disjoint; {metrics.get('test_patterns_rejected', 0)} rejected < 5 spots)",
        f"crystal system, single pattern     : {metrics['system_accuracy_single']:.3f}"
        "   (goal >= 0.67)",
        *(
            f"  single, {name.replace('_', ' ')} patterns: {acc:.3f}"
            for name, acc in metrics.get("system_accuracy_single_by_orientation", {}).items()
        ),
        f"crystal system, {metrics['aggregate_patterns']}-pattern aggregate : "
        f"{metrics['system_accuracy_aggregate']:.3f}   (goal >= 0.79, "
        f"{metrics['aggregate_materials']} materials)",
        "system        patterns  recall  SG|system  SG hier.  MAE a    MAE b    MAE c (Å)",
    ]
    for system, e in metrics["per_system"].items():
        lines.append(
            f"{system:13s} {e['patterns']:8d}  {e['system_recall_single']:.3f}   "
            f"{e.get('space_group_given_system', float('nan')):.3f}      "
            f"{e['space_group_hierarchical']:.3f}    "
            f"{e.get('lattice_mae_a', float('nan')):.3f}    "
            f"{e.get('lattice_mae_b', float('nan')):.3f}    "
            f"{e.get('lattice_mae_c', float('nan')):.3f}"
        )
    n_agg = metrics["aggregate_patterns"]
    lines.append(f"{n_agg}-pattern aggregates  SG|system  SG hier.  MAE a (Å)")
    for system, e in metrics["per_system"].items():
        if "space_group_aggregate_given_system" in e:
            lines.append(
                f"{system:13s}          {e['space_group_aggregate_given_system']:.3f}      "
                f"{e['space_group_aggregate_hierarchical']:.3f}     "
                f"{e['lattice_mae_a_aggregate']:.3f}"
            )
    cubic = metrics["per_system"].get("cubic", {})
    if "space_group_given_system" in cubic:
        lines.append(
            f"cubic space group (given system)   : {cubic['space_group_given_system']:.3f}"
            f" single, {cubic.get('space_group_aggregate_given_system', float('nan')):.3f}"
            " aggregate"
            "   (goal >= 0.85)"
        )
    return "\n".join(lines)
