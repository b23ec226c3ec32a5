"""The estimators of the hierarchy and their fitting: the paper's forest hyperparameters, a
compact alternative, checked training labels, then the crystal-system classifier and each
present system's space-group and lattice models (13 at most), with a progress bar.

Two kinds of crystal-system classifier (:data:`SYSTEM_ESTIMATORS`): the paper's random forest,
whose confidence is the share of trees voting for a class, and a histogram gradient-boosted
classifier (``"boosting"``), whose confidence is its class probability. The space-group
classifiers and lattice regressors are random forests either way (boosted lattice regressors
read worse on the same data).

:data:`ESTIMATOR_PRESETS` names two whole configurations: ``"paper"`` (the paper's forests,
grown without limit: about 4 KB a training pattern, compressed) and ``"compact"``: the boosted
crystal-system classifier (about 5 MB at any data size, and more accurate: 0.49 against 0.46
single-pattern, 0.72 against 0.66 aggregated, on 744 materials), space-group forests of 48
trees with at least 2 patterns a leaf (a third of the size, within a point) and lattice
forests of 24 unlimited trees (a leaf limit blurs the exact multiples the scaled target
learns; fewer trees cost little). Measured in ``docs/benchmarks/crystal-measurements.md``.

To change the estimators (their defaults, or the scikit-learn class), this is the module to
edit; :mod:`.votes` reads the fitted models (a forest's ``estimators_``, a boosted
classifier's ``predict_proba``) to count votes and medians.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS

SYSTEM_PARAMS: dict[str, Any] = {"n_estimators": 80, "max_depth": 40, "max_features": None}
"""Paper hyperparameters of the crystal-system classifier."""

SPACE_GROUP_PARAMS: dict[str, Any] = {"n_estimators": 128, "max_depth": 30, "max_features": None}
"""Paper hyperparameters of each space-group classifier."""

LATTICE_PARAMS: dict[str, Any] = {"n_estimators": 80, "max_depth": 100, "max_features": None}
"""Paper hyperparameters of each lattice (a, b, c) regressor."""

BOOSTING_SYSTEM_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "l2_regularization": 1.0,
    "early_stopping": "auto",
}
"""Default hyperparameters of the boosted crystal-system classifier (early stopping on 10 % of
the training patterns when there are more than 10,000)."""

SYSTEM_ESTIMATORS: dict[str, type] = {
    "forest": RandomForestClassifier,
    "boosting": HistGradientBoostingClassifier,
}
"""The kinds of crystal-system classifier and their scikit-learn classes."""

ESTIMATOR_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"system_estimator": "forest"},
    "compact": {
        "system_estimator": "boosting",
        "aggregation": "learned",
        "space_group_params": {"n_estimators": 48, "min_samples_leaf": 2},
        "lattice_params": {"n_estimators": 24},
    },
}
"""Whole configurations as :class:`CrystalPredictor` keyword arguments (``"paper"``: the
paper's forests; ``"compact"``: see the module docstring)."""


def system_defaults(system_estimator: str) -> dict[str, Any]:
    """Default hyperparameters of a kind of crystal-system classifier."""
    if system_estimator not in SYSTEM_ESTIMATORS:
        raise ValueError(
            f"system_estimator={system_estimator!r} is not known; allowed: "
            f"{tuple(SYSTEM_ESTIMATORS)}"
        )
    return dict(SYSTEM_PARAMS if system_estimator == "forest" else BOOSTING_SYSTEM_PARAMS)


def _merge_params(
    defaults: Mapping[str, Any], override: Mapping[str, Any] | None, name: str, estimator: type
) -> dict[str, Any]:
    params = dict(defaults)
    if override is None:
        return params
    if not isinstance(override, Mapping):
        raise ValueError(
            f"{name} must be a dict of {estimator.__name__} parameters; got "
            f"{type(override).__name__}"
        )
    allowed = set(estimator().get_params()) - {"n_jobs", "random_state"}
    unknown = sorted(set(override) - allowed)
    if unknown:
        raise ValueError(
            f"{name} has unknown {estimator.__name__} parameter(s) {unknown}; allowed: "
            f"{sorted(allowed)} (n_jobs and random_state are set on CrystalPredictor)"
        )
    params.update(override)
    return params


def check_targets(
    x: np.ndarray,
    crystal_system: Sequence[str] | np.ndarray,
    space_group: Sequence[int] | np.ndarray,
    lattice: np.ndarray,
    lattice_weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The training labels as arrays, after checking them against the (N, F) features ``x``.

    Returns
    -------
    tuple
        Crystal systems (N,) str, space groups (N,) int64, lattices (N, 3) float64 and the
        lattice weights (N,) or None.

    Raises
    ------
    ValueError
        Naming the argument that is wrong and what is allowed.
    """
    n = x.shape[0]
    if n == 0:
        raise ValueError("features has no rows; fit needs at least one pattern")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"features has {bad.size} row(s) with NaN/inf (first: row {int(bad[0])}), e.g. "
            "patterns radial_basis(on_invalid='nan') marked invalid; drop them before fitting"
        )
    systems = np.asarray(crystal_system).astype(str)
    if systems.shape != (n,):
        raise ValueError(f"crystal_system must have shape ({n},); got {systems.shape}")
    unknown = sorted(set(systems.tolist()) - set(CRYSTAL_SYSTEMS))
    if unknown:
        raise ValueError(
            f"crystal_system holds {unknown}; allowed values are {list(CRYSTAL_SYSTEMS)}"
        )
    groups = np.asarray(space_group)
    if groups.shape != (n,):
        raise ValueError(f"space_group must have shape ({n},); got {groups.shape}")
    if (
        not np.issubdtype(groups.dtype, np.number)
        or np.any(groups != np.round(groups))
        or (np.any(groups < 1) or np.any(groups > 230))
    ):
        raise ValueError("space_group must hold integer space-group numbers 1 … 230")
    groups = groups.astype(np.int64)
    lat = np.asarray(lattice, dtype=np.float64)
    if lat.shape != (n, 3):
        raise ValueError(f"lattice must have shape ({n}, 3) for (a, b, c); got {lat.shape}")
    if not (np.isfinite(lat).all() and (lat > 0).all()):
        raise ValueError("lattice must hold finite lattice constants (a, b, c) > 0 in Å")
    weight = None
    if lattice_weight is not None:
        weight = np.asarray(lattice_weight, dtype=np.float64)
        if weight.shape != (n,) or not (np.isfinite(weight).all() and (weight > 0).all()):
            raise ValueError(
                f"lattice_weight must hold {n} finite weights > 0; got shape {weight.shape}"
            )
    return systems, groups, lat, weight


def fit_system_model(
    predictor: Any, x: np.ndarray, systems: np.ndarray
) -> RandomForestClassifier | HistGradientBoostingClassifier:
    """Fit ``predictor``'s kind of crystal-system classifier (its parameters, ``n_jobs`` and
    ``random_state``) on ``x`` and return it."""
    if predictor.system_estimator == "forest":
        model = RandomForestClassifier(
            **predictor.system_params,
            n_jobs=predictor.n_jobs,
            random_state=predictor.random_state,
        )
        return model.fit(x, systems)
    from threadpoolctl import threadpool_limits  # boosting: OpenMP threads, n_jobs at most

    model = HistGradientBoostingClassifier(
        **predictor.system_params, random_state=predictor.random_state
    )
    n_jobs = predictor.n_jobs
    with threadpool_limits(n_jobs if n_jobs and n_jobs > 0 else None, "openmp"):
        return model.fit(x, systems)


OUT_OF_FOLD_FOLDS = 4
"""Folds (by material) of :func:`out_of_fold_system_votes`."""


def out_of_fold_system_votes(
    predictor: Any, x: np.ndarray, systems: np.ndarray, material: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Crystal-system votes (N, 6) of every pattern from a classifier that never saw its
    material (:data:`OUT_OF_FOLD_FOLDS` folds by material, drawn with ``seed``).

    A learned aggregate over patterns (:mod:`.material_aggregate`) must be trained on votes
    like those it will meet: a classifier's votes on its own training patterns are far more
    confident than on new ones.
    """
    from .votes import class_votes, in_system_order

    material = np.asarray(material)
    ids = np.unique(material)
    fold_of_id = np.random.default_rng(seed).permutation(len(ids)) % OUT_OF_FOLD_FOLDS
    fold = fold_of_id[np.searchsorted(ids, material)]
    votes = np.zeros((len(x), len(CRYSTAL_SYSTEMS)))
    for k in range(OUT_OF_FOLD_FOLDS):
        rows = fold == k
        if not rows.any() or rows.all():
            continue
        model = fit_system_model(predictor, x[~rows], systems[~rows])
        votes[rows] = in_system_order(model, class_votes(model, x[rows]))
    return votes


def fit_models(
    predictor: Any,
    x: np.ndarray,
    systems: np.ndarray,
    groups: np.ndarray,
    target: np.ndarray,
    usable: np.ndarray,
    weight: np.ndarray | None,
    present: list[str],
    progress: bool,
    space_group_only: np.ndarray | None = None,
) -> RandomForestClassifier | HistGradientBoostingClassifier:
    """Fit the models of ``predictor`` (its parameters, ``n_jobs`` and ``random_state``).

    The space-group classes and forests and the lattice forests of each system in ``present``
    are stored on the predictor as they are fitted; the crystal-system classifier is returned.
    A system whose patterns share one space group gets no space-group forest (None). The
    lattice forests learn ``target`` on the ``usable`` rows, weighted by ``weight``. The
    ``space_group_only`` rows (default: none) train only the space-group forests.
    """
    from tqdm.auto import tqdm

    common = {"n_jobs": predictor.n_jobs, "random_state": predictor.random_state}
    with tqdm(
        total=1 + 2 * len(present), desc="crystal models", disable=not progress, unit="model"
    ) as bar:
        bar.set_postfix_str("crystal system")
        every = np.ones(len(x), bool) if space_group_only is None else ~space_group_only
        model = fit_system_model(predictor, x[every], systems[every])
        bar.update()
        for system in present:
            rows = systems == system
            classes = np.unique(groups[rows])
            predictor.space_group_classes_[system] = classes
            bar.set_postfix_str(f"{system} space group")
            if classes.size == 1:
                predictor.space_group_models_[system] = None
            else:
                sg_model = RandomForestClassifier(**predictor.space_group_params, **common)
                predictor.space_group_models_[system] = sg_model.fit(x[rows], groups[rows])
            bar.update()
            bar.set_postfix_str(f"{system} lattice")
            lat_model = RandomForestRegressor(**predictor.lattice_params, **common)
            rows &= usable & every
            predictor.lattice_models_[system] = lat_model.fit(
                x[rows], target[rows], sample_weight=None if weight is None else weight[rows]
            )
            bar.update()
    return model
