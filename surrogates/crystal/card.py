"""The model card of a trained crystal model: ``MODEL_CARD.md`` beside its files.

``uedsteer train crystal`` writes it with every model: the command that made it, the data
(stores, seeds, materials, patterns, simulation settings), the estimators, the figures on the
material-disjoint test materials, how textbook crystals read
(:mod:`~uedsteer.surrogates.crystal.reference_structures`), and the size and SHA-256 of each
file. The card of the shipped model is ``surrogates/crystal/model/MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS, draws_every_system

from .persistence import CARD_FILE, METADATA_FILE, sha256_of


def _store_lines(simulation: dict[str, Any]) -> list[str]:
    lines = [
        "| store | seed | materials | systems | zone axes | random orientations | thickness (nm) "
        "| sg_max (1/Å) | thermal σ (Å) | min_intensity | k_max (1/Å) | kV |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, s in enumerate(simulation.get("stores", [])):
        systems = s.get("systems", list(CRYSTAL_SYSTEMS))
        values = [
            ("all" if draws_every_system(systems) else ", ".join(systems))
            if key == "systems"
            else s.get(key, "")
            for key in (
                "seed",
                "n_materials",
                "systems",
                "zone_axes",
                "random_orientations",
                "thickness_nm",
                "sg_max",
                "thermal_sigma",
                "min_intensity",
                "k_max",
                "voltage_kv",
            )
        ]
        lines.append(
            f"| {k + 1} | "
            + " | ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
            + " |"
        )
    return lines


def _figure_lines(metrics: dict[str, Any]) -> list[str]:
    n_agg = metrics.get("aggregate_patterns", 10)
    lines = [
        f"Test set: {metrics['test_patterns']} patterns of {metrics['test_materials']} "
        "materials that no training pattern shows (split by material, "
        f"{metrics['split']['test_fraction']:.0%}, seed {metrics['split']['seed']}).",
        "",
        f"* crystal system, single pattern: **{metrics['system_accuracy_single']:.3f}**"
        " (paper: 0.67)",
    ]
    for name, acc in metrics.get("system_accuracy_single_by_orientation", {}).items():
        lines.append(f"  * {name.replace('_', ' ')} patterns: {acc:.3f}")
    how = metrics.get("aggregation", "difference")
    lines.append(
        f"* crystal system, {n_agg}-pattern {how} aggregate: "
        f"**{metrics['system_accuracy_aggregate']:.3f}** (paper: 0.79; "
        f"{metrics['aggregate_materials']} materials)"
    )
    if how == "learned":
        lines.append(
            f"  * the paper's difference aggregate of the same draws: "
            f"{metrics['system_accuracy_aggregate_difference']:.3f}"
        )
    lines += [
        "",
        "| system | patterns | recall | space group, system given | space group, hierarchical"
        f" | {n_agg}-pattern space group (system given) | MAE a (Å) | MAE b (Å) | MAE c (Å) | "
        f"{n_agg}-pattern MAE a (Å) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    nan = float("nan")
    for system, e in metrics["per_system"].items():
        lines.append(
            f"| {system} | {e['patterns']} | {e['system_recall_single']:.3f} | "
            f"{e.get('space_group_given_system', nan):.3f} | "
            f"{e['space_group_hierarchical']:.3f} | "
            f"{e.get('space_group_aggregate_given_system', nan):.3f} | "
            f"{e.get('lattice_mae_a', nan):.3f} | {e.get('lattice_mae_b', nan):.3f} | "
            f"{e.get('lattice_mae_c', nan):.3f} | {e.get('lattice_mae_a_aggregate', nan):.3f} |"
        )
    lines += [
        "",
        "MAE: median absolute error over the test patterns (or materials) of the system, "
        "through that system's own models.",
    ]
    return lines


def _reference_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| crystal | true system | true space group | true a (Å) | read as | space group | "
        "a, b, c (Å) | confidence |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lattice = ", ".join(f"{v:.3f}" for v in r["predicted_lattice"])
        lines.append(
            f"| {r['name']} | {r['crystal_system']} | {r['space_group']} | {r['a']:g} | "
            f"{r['predicted_system']} | {r['predicted_space_group']} | {lattice} | "
            f"{r['confidence']:.2f} |"
        )
    return lines


def write_model_card(folder: str | Path, reference: list[dict[str, Any]] | None = None) -> Path:
    """Write ``MODEL_CARD.md`` into a saved model's folder, from its metadata and files.

    Parameters
    ----------
    folder : path
        A folder written by :meth:`CrystalPredictor.save` (with the training metrics in its
        metadata, as ``uedsteer train crystal`` saves them).
    reference : list of dict, optional
        :func:`~uedsteer.surrogates.crystal.reference_structures.read_reference_structures`'s
        rows, shown in their own section.

    Returns
    -------
    pathlib.Path
        The card's path.
    """
    folder = Path(folder)
    meta = json.loads((folder / METADATA_FILE).read_text())
    metrics = meta.get("metrics", {})
    hyper = meta["hyperparameters"]
    sizes = meta["training_sizes"]
    system_kind = {
        "forest": "RandomForestClassifier",
        "boosting": "HistGradientBoostingClassifier",
    }[hyper.get("system_estimator", "forest")]
    lines = [
        "# Crystal model card",
        "",
        "Hierarchical models after Gleason et al. (2024): a crystal-system classifier routes "
        "each Bragg list to its system's space-group classifier and (a, b, c) regressor; over "
        "several patterns of one material the crystal system is "
        + (
            "read by a classifier of the whole set of patterns (`material_aggregate`: the "
            "nets, symmetries and spacings of all zones beside their votes), the space group "
            "by the product of the patterns' smoothed votes, "
            if hyper.get("aggregation") == "learned"
            else "combined by difference aggregation, "
        )
        + "and the lattice is the median of every tree's prediction for every pattern. Load it "
        "with `CrystalPredictor.load(FOLDER)` (skops, only scikit-learn and numpy types; the "
        "model file's SHA-256 is checked against `metadata.json`).",
        "",
        "## How it was made",
        "",
        f"* command: `{metrics.get('command', '')}`",
        f"* created {meta.get('created', '')}, code {metrics.get('code_version', 'unknown')}; "
        + ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()),
        f"* features: `{meta['features']['feature_set']}` "
        f"({meta['features']['n_features']} per pattern), lattice target "
        f"`{meta['features']['lattice_target']}`, lattice weighting "
        f"`{metrics.get('lattice_weighting', '')}`",
        f"* training spot positions: {_jitter_words(metrics.get('position_jitter', 0.0))}",
        f"* estimators `{metrics.get('estimators', '')}`; crystal system "
        f"({system_kind}): `{json.dumps(hyper['system'])}`",
        "* space group (a RandomForestClassifier per system): "
        f"`{json.dumps(hyper['space_group'])}`",
        "* lattice (a RandomForestRegressor per system): "
        f"`{json.dumps(hyper['lattice'])}`, seed {hyper.get('random_state')}",
        *(
            [
                "* material aggregate (HistGradientBoostingClassifier on "
                f"{len(hyper['material_features'])} features of a material's patterns, trained "
                "on random subsets of each training material with out-of-fold system votes): "
                f"`{json.dumps(hyper['aggregate'])}`"
            ]
            if "aggregate" in hyper
            else []
        ),
        "",
        "## Data",
        "",
        f"{sizes.get('total', 0)} training patterns of {metrics.get('train_materials', '?')} "
        "materials (" + ", ".join(f"{k} {v}" for k, v in sizes.items() if k != "total") + "); "
        f"{metrics.get('rejected_patterns_lt5_spots', 0)} lists with < 5 spots left out. "
        "Random crystals from AFLOW prototypes, Materials-Project Wyckoff sets and pyxtal "
        "(`uedsteer generate crystals`), Bloch-wave Bragg lists:",
        "",
        *_store_lines(meta.get("simulation", {})),
        "",
        "The simulation settings are the defaults of `dynamical_bragg` (the simulation "
        "convention); `predict` warns when a list visibly departs from them. A store that "
        "draws only some crystal systems trains only their space-group forests, with all of "
        "its materials (the other models and the held-out materials come from the other "
        "stores).",
        "",
        "## Figures on held-out materials",
        "",
        *(_figure_lines(metrics) if "system_accuracy_single" in metrics else ["(none)"]),
    ]
    if reference:
        lines += [
            "",
            "## Textbook crystals",
            "",
            "`dynamical_bragg` with its defaults along `zone_axes(atoms, n=10)`, "
            "`predict_aggregate` (the guide's snippet):",
            "",
            *_reference_lines(reference),
        ]
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != CARD_FILE and not p.name.startswith(".")
    ]
    total = sum(p.stat().st_size for p in files)
    lines += [
        "",
        "## Files",
        "",
        f"{total / 1e6:.1f} MB besides this card.",
        "",
        "| file | bytes | SHA-256 |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {p.name} | {p.stat().st_size} | `{sha256_of(p)}` |" for p in files]
    lines.append("")
    card = folder / CARD_FILE
    card.write_text("\n".join(lines))
    return card


def _jitter_words(rms: float) -> str:
    """How the training lists' spot positions were made (``position_jitter``)."""
    if not rms:
        return "exact (as simulated)"
    return (
        f"a Gaussian error per coordinate, its rms drawn per list from 0 to {rms:g} 1/Å "
        "(held-out figures: exact lists)"
    )


__all__ = ["write_model_card"]
