"""Hierarchical models: crystal system → space group and lattice (Gleason et al. 2024).

Thirteen models, as in the paper: one classifier for the crystal system trained on every
pattern (the paper's random forest, or a gradient-boosted classifier: ``system_estimator``),
and for each crystal system one space-group forest and one (a, b, c) lattice forest trained
only on that system's patterns. A pattern is routed to the sub-models of its predicted crystal
system.

This module is the hierarchy: construction, routing, prediction. Its neighbours hold the other
jobs: :mod:`.featurizer` (Bragg lists → features, a validated constructor argument of the
predictor), :mod:`.fitting` (the estimators and their fits), :mod:`.lattice_target` (what the
lattice regressors learn: Å, or a multiple of the pattern's own length scale),
:mod:`.votes` (tree votes, difference aggregation over patterns), :mod:`.results` (what a
prediction returns) and :mod:`.persistence` (save and load).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS

from .centring import cubic_centring, weigh_by_centring
from .convention import warn_convention
from .featurizer import FEATURE_SETS, CrystalFeaturizer
from .fitting import (
    LATTICE_PARAMS,
    SPACE_GROUP_PARAMS,
    SYSTEM_ESTIMATORS,
    _merge_params,
    check_targets,
    fit_models,
    out_of_fold_system_votes,
    system_defaults,
)
from .lattice_target import check_lattice_target, from_lattice_target, to_lattice_target
from .material_aggregate import (
    NEEDED_ZONE_FEATURES,
    fit_material_classifier,
    material_features,
    zone_columns,
)
from .persistence import TRAIN_HINT, load_predictor, save_predictor
from .results import AggregatePrediction, PatternPrediction
from .votes import (
    class_votes,
    difference_aggregate,
    difference_weight,
    in_system_order,
    product_aggregate,
    tree_median,
    tree_outputs,
    tree_votes,
)

AGGREGATIONS = ("difference", "learned")
"""How :meth:`CrystalPredictor.predict_aggregate` combines the system votes of a material."""


def _as_lists(bragg_lists: Any) -> Sequence[Any]:
    """Bragg lists as a sequence: one (n, 3) array becomes a list of one (an object array is
    many), and a generator is read once, since featurization and the checks both read it."""
    if isinstance(bragg_lists, np.ndarray) and bragg_lists.ndim == 2:
        return [bragg_lists]
    if not isinstance(bragg_lists, list | tuple | np.ndarray):
        return list(bragg_lists)
    return bragg_lists


def _featurizer_setting(name: str, doc: str) -> property:
    """A read-only property giving the featurizer's setting ``name``."""
    return property(lambda self: getattr(self.featurizer, name), doc=doc)


class CrystalPredictor:
    """Crystal system, space group and lattice constants from Bragg lists (13 models).

    Parameters
    ----------
    system_params, space_group_params, lattice_params : dict, optional
        Overrides of the estimators' parameters; the defaults are the paper's forests and, for
        a boosted crystal-system classifier, ``BOOSTING_SYSTEM_PARAMS``
        (:mod:`~uedsteer.surrogates.crystal.fitting`; its ``ESTIMATOR_PRESETS`` hold the
        "paper" and "compact" configurations).
    n_jobs : int or None
        Parallel jobs for fitting the forests (joblib convention). Default −1 (all cores).
        Prediction loops over the trees in one thread (counting each tree's vote).
    random_state : int or None
        Seed of every forest.
    q_range, orient, features
        Shorthand for ``featurizer=CrystalFeaturizer(features, orient=orient,
        q_range=q_range)`` when no ``featurizer`` is given.
    lattice_target : {"direct", "scaled"}, optional
        What the lattice regressors learn (see the module docstring); default "scaled" when the
        features include the zone features, else "direct".
    featurizer : CrystalFeaturizer, optional
        How Bragg lists become features (feature set, detector window, orientation, basis
        size); its settings are saved with the models.
    system_estimator : {"forest", "boosting"}
        The crystal-system classifier: the paper's random forest (confidence: the share of
        trees voting for a class) or a histogram gradient-boosted classifier (confidence: its
        class probability). Difference aggregation uses either.
    aggregation : {"difference", "learned"}
        How :meth:`predict_aggregate` combines the crystal-system votes of several patterns of
        one material: the paper's difference aggregation, or a classifier of the whole set
        (:mod:`~uedsteer.surrogates.crystal.material_aggregate`, fitted by :meth:`fit` when
        it is given each pattern's material; needs the zone features).

    Attributes
    ----------
    system_model_ : RandomForestClassifier, HistGradientBoostingClassifier or None
    space_group_models_ : dict[str, RandomForestClassifier or None]
        None for a system whose training patterns all share one space group.
    space_group_classes_ : dict[str, numpy.ndarray]
    lattice_models_ : dict[str, RandomForestRegressor]
    aggregate_model_ : HistGradientBoostingClassifier or None
        The material classifier of ``aggregation="learned"``.
    training_sizes_ : dict[str, int]
        Patterns per crystal system plus ``"total"``.
    simulation_ : dict
        How the training lists were simulated
        (:func:`~uedsteer.surrogates.crystal.convention.simulation_record`; empty when not
        known). :meth:`predict` and :meth:`predict_aggregate` warn
        (:class:`~uedsteer.surrogates.crystal.convention.SimulationConventionWarning`) when
        Bragg lists visibly depart from it.
    """

    def __init__(
        self,
        system_params: Mapping[str, Any] | None = None,
        space_group_params: Mapping[str, Any] | None = None,
        lattice_params: Mapping[str, Any] | None = None,
        n_jobs: int | None = -1,
        random_state: int | None = 0,
        q_range: tuple[float, float] | None = None,
        orient: bool = True,
        features: str = "radial",
        lattice_target: str | None = None,
        featurizer: CrystalFeaturizer | None = None,
        system_estimator: str = "forest",
        aggregation: str = "difference",
    ) -> None:
        defaults = system_defaults(system_estimator)  # refuses an unknown kind
        self.system_estimator = system_estimator
        self.system_params = _merge_params(
            defaults, system_params, "system_params", SYSTEM_ESTIMATORS[system_estimator]
        )
        self.space_group_params = _merge_params(
            SPACE_GROUP_PARAMS, space_group_params, "space_group_params", RandomForestClassifier
        )
        self.lattice_params = _merge_params(
            LATTICE_PARAMS, lattice_params, "lattice_params", RandomForestRegressor
        )
        self.n_jobs = n_jobs
        self.random_state = random_state
        if featurizer is None:
            if features not in FEATURE_SETS:
                raise ValueError(f"features={features!r} is not known; allowed: {FEATURE_SETS}")
            featurizer = CrystalFeaturizer(features, orient=orient, q_range=q_range)
        elif not isinstance(featurizer, CrystalFeaturizer):
            raise ValueError(
                f"featurizer={featurizer!r} is not allowed; use a CrystalFeaturizer or None"
            )
        elif (q_range, orient, features) != (None, True, "radial"):
            raise ValueError(
                f"featurizer={featurizer!r} was given together with features=/orient=/q_range=; "
                "give those settings to the CrystalFeaturizer only"
            )
        self.featurizer = featurizer
        if lattice_target is None:
            lattice_target = "scaled" if "zone" in featurizer.feature_set else "direct"
        self.lattice_target = lattice_target
        self._check_lattice_target()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation={aggregation!r} is not known; allowed: {AGGREGATIONS}")
        if aggregation == "learned" and self._material_columns() is None:
            raise ValueError(
                "aggregation='learned' needs the zone features "
                f"{list(NEEDED_ZONE_FEATURES)}; featurizer has {list(featurizer.zone_features)}"
            )
        self.aggregation = aggregation
        self.aggregate_model_: HistGradientBoostingClassifier | None = None
        self.system_model_: RandomForestClassifier | HistGradientBoostingClassifier | None = None
        self.space_group_models_: dict[str, RandomForestClassifier | None] = {}
        self.space_group_classes_: dict[str, np.ndarray] = {}
        self.lattice_models_: dict[str, RandomForestRegressor] = {}
        self.training_sizes_: dict[str, int] = {}
        self.simulation_: dict[str, Any] = {}
        self.metadata_: dict[str, Any] = {}

    # -- the featurizer's settings (read-only: a predictor featurizes as it was built) ------

    feature_set = _featurizer_setting("feature_set", "The featurizer's feature set.")
    zone_features = _featurizer_setting("zone_features", "The zone-feature columns used.")
    q_range = _featurizer_setting("q_range", "Detector window applied before featurization.")
    orient = _featurizer_setting("orient", "Whether each list is rotated before featurization.")
    dq = _featurizer_setting("dq", "Radial step of the radial basis (1/Å).")
    n_radial = _featurizer_setting("n_radial", "Radial bins of the radial basis.")
    p_max = _featurizer_setting("p_max", "Highest angular order of the radial basis.")
    min_spots = _featurizer_setting("min_spots", "Fewest spots of a usable Bragg list.")
    n_features = _featurizer_setting("n_features", "Length of the models' feature vector.")

    def _material_columns(self) -> dict[str, int] | None:
        """Columns of the zone features a material aggregate reads, or None."""
        f = self.featurizer
        return zone_columns(f.zone_features, f.n_features - len(f.zone_features))

    def _check_lattice_target(self) -> None:
        check_lattice_target(self.lattice_target, self.featurizer)

    def lattice_scale(self, features: np.ndarray) -> np.ndarray:
        """Each pattern's length scale s (1/Å) for the scaled lattice target (as
        :meth:`CrystalFeaturizer.lattice_scale` defines it).

        Parameters
        ----------
        features : numpy.ndarray, (N, n_features)
            Model inputs (zone features included).
        """
        return self.featurizer.lattice_scale(features)

    @property
    def trained_systems(self) -> tuple[str, ...]:
        """Crystal systems with sub-models, in :data:`CRYSTAL_SYSTEMS` order."""
        return tuple(s for s in CRYSTAL_SYSTEMS if s in self.lattice_models_)

    def _check_fitted(self) -> RandomForestClassifier | HistGradientBoostingClassifier:
        if self.system_model_ is None:
            raise NotFittedError(
                "this CrystalPredictor is not fitted; call fit() or CrystalPredictor.load() "
                f"(to get saved models, {TRAIN_HINT})"
            )
        return self.system_model_

    # -- fitting --------------------------------------------------------------------------
    def _check_features(self, features: Any, name: str = "features") -> np.ndarray:
        return self.featurizer.check_features(features, name)

    def fit(
        self,
        features: np.ndarray,
        crystal_system: Sequence[str] | np.ndarray,
        space_group: Sequence[int] | np.ndarray,
        lattice: np.ndarray,
        progress: bool = True,
        lattice_weight: np.ndarray | None = None,
        material: Sequence[int] | np.ndarray | None = None,
        space_group_only: np.ndarray | None = None,
    ) -> CrystalPredictor:
        """Fit the 13 forests (fewer when some crystal systems are absent), and with
        ``aggregation="learned"`` the material classifier.

        Parameters
        ----------
        features : array_like, shape (N, n_features)
            Model inputs (:meth:`features`); rows must be finite (drop invalid patterns first).
        crystal_system : sequence of str, length N
            Each an element of :data:`CRYSTAL_SYSTEMS`.
        space_group : sequence of int, length N
            International space-group numbers 1 … 230.
        lattice : array_like, shape (N, 3)
            (a, b, c) in Å, finite and > 0.
        progress : bool
            Show a tqdm progress bar over the fits.
        lattice_weight : array_like, shape (N,), optional
            Sample weights of the patterns in the lattice regressors (e.g.
            :func:`~uedsteer.surrogates.crystal.train.cell_size_weights`); the classifiers
            weigh every pattern equally.
        material : array_like, shape (N,), optional
            Material index of each pattern; needed with ``aggregation="learned"``, whose
            classifier learns from random subsets of each material's patterns and their
            out-of-fold system votes (four more fits of the crystal-system classifier).
        space_group_only : array_like of bool, shape (N,), optional
            Patterns that train only their systems' space-group forests (default: none), as
            those of a store that draws only some systems: they would bias the crystal-system
            and material classifiers towards those systems, and their cells (mostly large)
            the lattice regressors' prior.

        Returns
        -------
        CrystalPredictor
            ``self``.

        Notes
        -----
        A system absent from the training data gets no sub-models (and is never predicted). A
        system whose patterns all share one space group gets no space-group forest: it always
        predicts that space group, with all trees (``n_estimators``) voting for it.
        """
        x = self._check_features(features)
        systems, groups, lat, weight = check_targets(
            x, crystal_system, space_group, lattice, lattice_weight
        )
        only = np.zeros(x.shape[0], bool) if space_group_only is None else space_group_only
        only = np.asarray(only)
        if only.shape != (x.shape[0],) or only.dtype != bool or only.all():
            raise ValueError(
                f"space_group_only must be a boolean mask of the {x.shape[0]} patterns with "
                "at least one False"
            )
        rows = ~only
        if self.aggregation == "learned":
            if material is None or len(material) != x.shape[0]:
                raise ValueError(
                    "aggregation='learned' needs material= with one material index per pattern "
                    f"({x.shape[0]}); got {None if material is None else len(material)}"
                )
            material = np.asarray(material)
        target, usable = to_lattice_target(lat, x, self.lattice_target, self.featurizer)
        present = [s for s in CRYSTAL_SYSTEMS if np.any(systems == s)]
        self.system_model_ = None
        self.space_group_models_, self.space_group_classes_, self.lattice_models_ = {}, {}, {}
        self.aggregate_model_ = None
        model = fit_models(
            self, x, systems, groups, target, usable, weight, present, progress, only
        )
        if self.aggregation == "learned":
            seed = self.random_state or 0
            xs, ss, ms = x[rows], systems[rows], material[rows]
            votes = out_of_fold_system_votes(self, xs, ss, ms, seed=seed)
            self.aggregate_model_ = fit_material_classifier(
                xs, votes, ms, ss, self._material_columns(), seed=seed
            )
        self.system_model_ = model
        self.training_sizes_ = {"total": int(x.shape[0])}
        self.training_sizes_.update({s: int(np.sum(systems == s)) for s in present})
        return self

    # -- prediction helpers -----------------------------------------------------------------

    def _system_votes(self, x32: np.ndarray) -> np.ndarray:
        """Votes (n, 6) in CRYSTAL_SYSTEMS order: a forest's tree votes, a boosted
        classifier's class probabilities (:func:`~.votes.class_votes`)."""
        model = self._check_fitted()
        return in_system_order(model, class_votes(model, x32))

    def _space_group_votes(self, system: str, x32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tree votes (n, K) of ``system``'s space-group model and its K space groups."""
        classes = self.space_group_classes_[system]
        model = self.space_group_models_[system]
        if model is None:
            n_trees = int(self.space_group_params["n_estimators"])
            return np.full((x32.shape[0], 1), n_trees, dtype=np.int64), classes
        return tree_votes(model, x32), np.asarray(model.classes_, dtype=np.int64)

    def _lattice(self, system: str, x32: np.ndarray) -> np.ndarray:
        """Each pattern's (a, b, c) in Å: the median of the trees (n, 3)."""
        median = np.atleast_2d(tree_median(self.lattice_models_[system], x32))
        return from_lattice_target(median, x32, self.lattice_target, self.featurizer)

    def _pooled_lattice(self, system: str, x32: np.ndarray) -> np.ndarray:
        """(a, b, c) in Å of several patterns of one material: the median of every tree's
        prediction for every pattern (3,)."""
        trees = tree_outputs(self.lattice_models_[system], x32)  # (trees, n, 3)
        per_tree = [
            from_lattice_target(np.atleast_2d(t), x32, self.lattice_target, self.featurizer)
            for t in trees
        ]
        return np.median(np.concatenate(per_tree, axis=0), axis=0)

    def _check_system(self, system: str, name: str) -> str:
        if system not in self.lattice_models_:
            raise ValueError(
                f"{name}={system!r} has no trained sub-models; trained systems are "
                f"{list(self.trained_systems)}"
            )
        return system

    def prepare(self, bragg_lists: Any) -> list[np.ndarray]:
        """Crop to the model's q window and orient, as done before featurization."""
        return self.featurizer.prepare(bragg_lists)

    def _inputs(
        self, bragg_lists: Any, features: Any, preprocess: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, F) and validity mask (N,) from exactly one of the two inputs."""
        if (bragg_lists is None) == (features is None):
            raise ValueError("give exactly one of bragg_lists or features=")
        if features is not None:
            x = self._check_features(features)
            return x, np.isfinite(x).all(axis=1)
        bragg_lists = _as_lists(bragg_lists)
        x, valid = self.featurizer.transform(bragg_lists, preprocess)
        if self.simulation_:
            self._check_convention(bragg_lists, valid, preprocess)
        return x, valid

    def _check_convention(
        self, bragg_lists: Sequence[Any], valid: np.ndarray, preprocess: bool
    ) -> None:
        """Warn when the valid lists visibly depart from the training lists' simulation."""
        lists = [b for b, ok in zip(bragg_lists, valid, strict=True) if ok]
        record = dict(self.simulation_)
        q_range = self.featurizer.q_range
        if q_range is not None and q_range[1] <= record.get("k_max", np.inf):
            record.pop("k_max", None)  # the model crops every list to its window first
        warn_convention(lists, record, preprocess, stacklevel=5)

    def features(self, bragg_lists: Any) -> tuple[np.ndarray, np.ndarray]:
        """The model's input for Bragg lists: cropped and oriented as the model was trained,
        the radial basis with the authors' preprocessing, plus the zone features if used.

        Returns
        -------
        tuple
            (N, ``n_features``) features (NaN rows for lists with too few spots) and the
            (N,) mask of usable lists.
        """
        return self._inputs(bragg_lists, None, True)

    # -- public prediction ------------------------------------------------------------------

    def predict(
        self,
        bragg_lists: Any = None,
        *,
        features: np.ndarray | None = None,
        preprocess: bool = True,
        route_to: str | None = None,
    ) -> PatternPrediction:
        """Predict every pattern separately through the hierarchy.

        Parameters
        ----------
        bragg_lists : array or sequence of arrays, optional
            One (n, 3) Bragg list or a sequence of them, featurized as :meth:`features` does;
            unusable patterns come back with ``valid=False`` instead of raising.
        features : array_like, shape (N, n_features) or (n_features,), optional
            Precomputed features instead of Bragg lists; rows with NaN are invalid.
        preprocess : bool
            The authors' preprocessing (the models are trained with it).
        route_to : str, optional
            Use this crystal system's space-group and lattice models for every pattern instead
            of each pattern's predicted system (e.g. the paper's gold data, where all lattices
            came from the cubic model). ``crystal_system`` still reports the classifier.

        Returns
        -------
        PatternPrediction
        """
        self._check_fitted()
        if route_to is not None:
            self._check_system(route_to, "route_to")
        x, valid = self._inputs(bragg_lists, features, preprocess)
        out = PatternPrediction.empty(valid)
        rows = np.flatnonzero(valid)
        if rows.size == 0:
            return out
        x32 = np.ascontiguousarray(x[rows], dtype=np.float32)
        votes = self._system_votes(x32)
        total = votes.sum(axis=1)
        winner = np.argmax(votes, axis=1)
        systems = np.asarray(CRYSTAL_SYSTEMS)[winner]
        out.system_votes[rows] = votes
        out.crystal_system[rows] = systems
        out.system_confidence[rows] = votes[np.arange(rows.size), winner] / total
        out.difference_weight[rows] = difference_weight(votes)
        routed = systems if route_to is None else np.full(rows.size, route_to)
        out.routed_system[rows] = routed
        for system in np.unique(routed):
            sub = np.flatnonzero(routed == system)
            sg_votes, classes = self._space_group_votes(str(system), x32[sub])
            best = np.argmax(sg_votes, axis=1)
            out.space_group[rows[sub]] = classes[best]
            out.space_group_confidence[rows[sub]] = sg_votes[
                np.arange(sub.size), best
            ] / sg_votes.sum(axis=1)
            out.space_group_difference_weight[rows[sub]] = difference_weight(sg_votes)
            out.lattice[rows[sub]] = self._lattice(str(system), x32[sub])
        return out

    def predict_aggregate(
        self,
        bragg_lists: Any = None,
        *,
        features: np.ndarray | None = None,
        preprocess: bool = True,
        route_to: str | None = None,
        aggregation: str | None = None,
    ) -> AggregatePrediction:
        """One prediction for several patterns of the same material.

        The crystal system is the material classifier's choice for the whole set of patterns
        (``aggregation="learned"``) or the difference aggregate of the patterns' system votes
        (the paper). Then all valid patterns go through the winning system's space-group
        model, whose votes are combined by their product (:func:`~.votes.product_aggregate`,
        with ``"learned"``) or by difference aggregation (``"difference"``), and its lattice
        model: the median of every tree's (a, b, c) for every pattern. (The paper takes the
        median over patterns of each pattern's tree median; pooling the trees keeps a pattern
        whose trees split between two multiples of the cell, as gold's square [001] zone
        between 4.08 Å and 2.885 Å, from casting a coin-flip vote.) Invalid patterns are left
        out. For a cubic crystal with Bragg lists, the spots indexed on the aggregate's a
        decide the lattice centring (:func:`~.centring.cubic_centring`: I forbids every odd
        h² + k² + l², F every mixed-parity hkl, and multiple scattering cannot fill them in),
        and the weight of every space group of another centring is multiplied by the small
        likelihood that a primitive crystal's spots look centred
        (:data:`~.centring.PSEUDO_CENTRING`).

        Parameters
        ----------
        bragg_lists, features, preprocess
            As in :meth:`predict`; ``bragg_lists`` may be given beside ``features`` (the lists
            of the same patterns), then they serve only the centring check.
        route_to : str, optional
            Use this system's space-group and lattice models instead of the aggregated
            system's (e.g. when the system is known); ``crystal_system`` is still the
            aggregate of the system votes.
        aggregation : {"learned", "difference"}, optional
            Default: the model's own (``"learned"`` when it has a material classifier and
            there are at least two valid patterns).
            ``"difference"`` gives the paper's aggregate with any model.

        Returns
        -------
        AggregatePrediction

        Raises
        ------
        ValueError
            If no pattern is valid.
        """
        self._check_fitted()
        if route_to is not None:
            self._check_system(route_to, "route_to")
        bragg_lists = None if bragg_lists is None else _as_lists(bragg_lists)
        model_lists = None if features is not None else bragg_lists
        x, valid = self._inputs(model_lists, features, preprocess)
        if bragg_lists is not None and len(bragg_lists) != len(x):
            raise ValueError(
                f"bragg_lists has {len(bragg_lists)} lists but features= has {len(x)} rows; "
                "give the lists of the same patterns"
            )
        n_valid = int(valid.sum())
        if n_valid == 0:
            raise ValueError(
                f"none of the {x.shape[0]} patterns is valid (each needs >= {self.min_spots} "
                "finite spots with non-negative intensity); nothing to aggregate"
            )
        x32 = np.ascontiguousarray(x[valid], dtype=np.float32)
        how = self._aggregation(aggregation, n_valid)
        votes = self._system_votes(x32)
        system, confidence, weights = self.aggregate_system(votes, x[valid], how)
        routed = route_to or self._check_system(system, "aggregated crystal system")
        sg_votes, classes = self._space_group_votes(routed, x32)
        lattice = self._pooled_lattice(routed, x32)
        combine = product_aggregate if how == "learned" else difference_aggregate
        group, sg_confidence, sg_weights = combine(sg_votes, classes.tolist())
        centring = None
        if routed == "cubic" and bragg_lists is not None:
            centring = cubic_centring([bragg_lists[i] for i in np.flatnonzero(valid)], lattice[0])
            group, sg_confidence, sg_weights = weigh_by_centring(sg_weights, centring)
        return AggregatePrediction(
            crystal_system=str(system),
            confidence=confidence,
            system_weights={str(k): v for k, v in weights.items()},
            space_group=int(group),
            space_group_confidence=sg_confidence,
            space_group_weights={int(k): v for k, v in sg_weights.items()},
            lattice=lattice,
            n_patterns=n_valid,
            n_rejected=int(x.shape[0] - n_valid),
            aggregation=how,
            centring=centring,
        )

    def _aggregation(self, aggregation: str | None, n_patterns: int = 2) -> str:
        """The aggregation to use: ``aggregation`` checked, or the model's own (for one
        pattern, its own vote: the material classifier learned from sets of 2–14)."""
        if aggregation is None:
            learned = self.aggregate_model_ is not None and n_patterns > 1
            return "learned" if learned else "difference"
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation={aggregation!r} is not known; allowed: {AGGREGATIONS}")
        if aggregation == "learned" and self.aggregate_model_ is None:
            raise ValueError(
                "aggregation='learned' needs a model trained with it (uedsteer train crystal "
                "--estimators compact); this one aggregates by 'difference'"
            )
        return aggregation

    def aggregate_system(
        self, votes: np.ndarray, x: np.ndarray | None = None, aggregation: str = "difference"
    ) -> tuple[str, float, dict[str, float]]:
        """The crystal system of several valid patterns of one material.

        Parameters
        ----------
        votes : numpy.ndarray, (n, 6)
            Their crystal-system votes (:attr:`PatternPrediction.system_votes`).
        x : numpy.ndarray, (n, n_features), optional
            Their features (finite rows); needed for ``"learned"``.
        aggregation : {"difference", "learned"}
            Difference aggregation of the votes (the paper), or the material classifier.

        Returns
        -------
        tuple
            (system, its confidence, every system's weight): the difference weights, or the
            material classifier's probabilities.
        """
        if aggregation != "learned":
            return difference_aggregate(votes, CRYSTAL_SYSTEMS)
        row = material_features(x, votes, self._material_columns())
        model = self.aggregate_model_
        probabilities = in_system_order(model, model.predict_proba(np.atleast_2d(row)))[0]
        k = int(np.argmax(probabilities))
        weights = {s: float(p) for s, p in zip(CRYSTAL_SYSTEMS, probabilities, strict=True)}
        return CRYSTAL_SYSTEMS[k], float(probabilities[k]), weights

    # -- persistence ------------------------------------------------------------------------

    def save(
        self, folder: str | os.PathLike | None = None, metrics: Mapping[str, Any] | None = None
    ) -> Path:
        """Save the forests (skops) and a JSON metadata file, ``metrics`` included, into
        ``folder``; returns the folder. See
        :func:`~uedsteer.surrogates.crystal.persistence.save_predictor` (and its default
        folder).
        """
        return save_predictor(self, folder, metrics)

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None) -> CrystalPredictor:
        """Load models saved by :meth:`save`, featurizer included. See
        :func:`~uedsteer.surrogates.crystal.persistence.load_predictor` for the default folder
        and what is checked and raised (a missing model says how to train one).
        """
        return load_predictor(cls, folder)
