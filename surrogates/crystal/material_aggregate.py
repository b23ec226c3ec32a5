"""A learned crystal-system aggregate over several patterns of one material.

The paper combines the patterns of one material by *difference aggregation*
(:func:`~.votes.difference_aggregate`): each pattern votes for its own best system. That
throws away what only the set of patterns shows. One zone axis cannot tell a square net of a
cubic crystal from that of a tetragonal one, but a cubic crystal also shows a hexagonal net
(along [111]) among its zone axes and a tetragonal one never does; the reduced cells of all
zone axes are sections of one reciprocal lattice, so their lengths index on one cubic scale
(Q / Q₀ integers) only for a cubic crystal; the first rings of all patterns, in units of the
material's smallest spacing, form a partial powder pattern. Measured spot positions blur the
hard tolerances of these tests, so how far each cell is from each net, and a cubic index with
relative tolerances, are given beside them.

:func:`material_features` measures these over the patterns of one material, from the zone
features alone (so it works on features as well as on Bragg lists), beside the per-pattern
system votes; :func:`fit_material_classifier` trains a gradient-boosted classifier on random
subsets of each training material's patterns, whose votes must be *out of fold*
(:func:`~.fitting.out_of_fold_system_votes`), as they will be at prediction time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS

from .zone import RING_CENTRES, UNDEFINED, ZONE_FEATURE_NAMES

_UNUSED = (
    "g2",
    "mirror_best",
    "mirror_second",
    "mirror_fourth",
    "n_spots",
    "q_max",
    "n_strong",
    "q_mean",
)
NEEDED_ZONE_FEATURES = tuple(n for n in ZONE_FEATURE_NAMES if n not in _UNUSED)
"""Zone features :func:`material_features` reads; a model without all of them aggregates by
difference (the paper)."""

NETS = ("square", "hexagonal", "rectangular", "centred", "oblique", "undefined")
"""The 2-D net of a zone-axis pattern's reduced cell (:func:`net_types`)."""
_SYMMETRY = ("rot2", "rot3", "rot4", "rot6", "mirrors_above_0.8", "on_lattice")
CUBIC_BASES = (1, 2, 3, 4, 8)
"""Q_min = N_min · Q₀ for the cubic index test: N_min 1 (P), 2 (I), 3 (F), 4, 8."""
POWDER_CENTRES = tuple(1.0 + k / 3.0 for k in range(34))
"""Bin centres of the pooled profile in Q / Q_min (1 … 12, steps of 1/3: face-centred rings
fall at 4/3, 8/3, 11/3 …)."""
EQUAL_TOLERANCE = 0.02
"""Relative tolerance of two equal lengths in a reduced cell."""
ANGLE_TOLERANCE = 1.0
"""Degrees within which a reduced cell's angle counts as 90° or 60°."""

MISFIT_STEPS = (0.5, 1.0, 2.0, 4.0)
"""Misfits (in units of the tolerances above) whose share of patterns is a feature: the hard
net types count a cell as square within one tolerance, but measured positions move cells
across that line, so how far each pattern is from each net is given as well."""
RELATIVE_BASES = CUBIC_BASES[:3]
"""N_min of the relative cubic index test (P, I, F)."""
RELATIVE_TOLERANCES = (0.005, 0.01)
"""Relative tolerances of the cubic index test on measured lengths: a spot's position error
moves Q / Q₀ by an amount that grows with Q, so an absolute tolerance fails at large Q."""

MATERIAL_FEATURE_NAMES = (
    tuple(f"vote_{s}" for s in CRYSTAL_SYSTEMS)
    + tuple(f"difference_{s}" for s in CRYSTAL_SYSTEMS)
    + tuple(f"share_{n}" for n in NETS)
    + tuple(f"any_{n}" for n in NETS)
    + tuple(f"{stat}_{name}" for name in _SYMMETRY for stat in ("mean", "max"))
    + ("rot36_times_rot4", "rot3_times_rot4", "rot6_times_rot4", "hexagonal_over_square_g1")
    + ("n_patterns",)
    + tuple(f"cubic_index_{n}_{tol}" for n in CUBIC_BASES for tol in ("0.02", "0.05"))
    + tuple(f"powder_{c:.3g}" for c in POWDER_CENTRES)
    + tuple(
        f"misfit_{net}_{stat}"
        for net in NETS[:4]
        for stat in ("least", "second", "median") + tuple(f"within_{t:g}" for t in MISFIT_STEPS)
    )
    + tuple(f"cubic_relative_{n}_{tol:g}" for n in RELATIVE_BASES for tol in RELATIVE_TOLERANCES)
)
"""Columns of :func:`material_features`."""


def zone_columns(zone_features: tuple[str, ...], offset: int) -> dict[str, int] | None:
    """Where each of :data:`NEEDED_ZONE_FEATURES` sits in a model's feature vector, or None.

    Parameters
    ----------
    zone_features : tuple of str
        The featurizer's zone-feature names, in their order.
    offset : int
        Columns before the zone features (the radial basis, if used).
    """
    if not set(NEEDED_ZONE_FEATURES) <= set(zone_features):
        return None
    return {name: offset + zone_features.index(name) for name in NEEDED_ZONE_FEATURES}


def net_types(zone: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 6) one-hot net of each pattern's reduced cell, columns :data:`NETS`.

    Square and hexagonal: |g2| = |g1| at 90° or 60°; rectangular: 90°, unequal; centred: a
    rhombic cell (|g2| = |g1| at another angle, or a diagonal as long as g2); oblique: the rest;
    undefined: no 2-D cell (a systematic row, too few spots).
    """
    g1 = zone["g1"]
    ratio = zone["g2_over_g1"]
    gamma = zone["gamma_deg"]
    undefined = g1 == UNDEFINED
    equal = np.abs(ratio - 1.0) < EQUAL_TOLERANCE
    right = np.abs(gamma - 90.0) < ANGLE_TOLERANCE
    sixty = np.abs(gamma - 60.0) < ANGLE_TOLERANCE
    diagonal = (np.abs(zone["g1_minus_g2_over_g1"] - ratio) < EQUAL_TOLERANCE) | (
        np.abs(zone["g1_plus_g2_over_g1"] - ratio) < EQUAL_TOLERANCE
    )
    square = ~undefined & equal & right
    hexagonal = ~undefined & equal & sixty
    rectangular = ~undefined & right & ~equal
    centred = ~undefined & ~right & ~sixty & (equal | diagonal)
    oblique = ~undefined & ~(square | hexagonal | rectangular | centred)
    return np.stack([square, hexagonal, rectangular, centred, oblique, undefined], axis=1).astype(
        np.float64
    )


def _cell_q2(zone: dict[str, np.ndarray]) -> np.ndarray:
    """Squared lengths (1/Å²) of every pattern's g1, g2 and g1 ± g2 (cells refined over all
    their spots)."""
    ok = zone["g1"] != UNDEFINED
    g1 = zone["g1"][ok]
    lengths = [g1, g1 * zone["g2_over_g1"][ok]]
    lengths += [g1 * zone["g1_plus_g2_over_g1"][ok], g1 * zone["g1_minus_g2_over_g1"][ok]]
    return np.concatenate(lengths) ** 2


def _cubic_index(
    q2: np.ndarray,
    bases: tuple[int, ...] = CUBIC_BASES,
    tolerances: tuple[float, ...] = (0.02, 0.05),
    relative: bool = False,
) -> list[float]:
    """Share of the cells' Q = |g|² below 20 Q_min that are integer multiples of Q_min/N_min,
    for each N_min of ``bases``, within each of ``tolerances`` of an integer (a cubic
    crystal's Q are (h² + k² + l²)/a² on every zone axis); ``relative``: the tolerances are
    relative to Q · N_min / Q_min (measured lengths: a spot's error moves it more at large Q)."""
    if not len(q2) or q2.min() <= 0:
        return [UNDEFINED] * (len(bases) * len(tolerances))
    x = q2 / q2.min()
    x = x[x < 20.0]
    out = []
    for n in bases:
        off = np.abs(x * n - np.round(x * n))
        if relative:
            off = off / (x * n)
        out += [float(np.mean(off < tol)) for tol in tolerances]
    return out


def net_misfits(zone: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 4) how far each pattern's reduced cell is from a square, hexagonal, rectangular and
    centred net, in units of :data:`EQUAL_TOLERANCE` and :data:`ANGLE_TOLERANCE` (below 1:
    :func:`net_types` calls it that net); rows of undefined cells are dropped."""
    ok = zone["g1"] != UNDEFINED
    ratio, gamma = zone["g2_over_g1"][ok], zone["gamma_deg"][ok]
    equal = np.abs(ratio - 1.0) / EQUAL_TOLERANCE
    diagonal = np.minimum(
        np.abs(zone["g1_minus_g2_over_g1"][ok] - ratio),
        np.abs(zone["g1_plus_g2_over_g1"][ok] - ratio),
    )
    right = np.abs(gamma - 90.0) / ANGLE_TOLERANCE
    return np.stack(
        [
            np.maximum(equal, right),
            np.maximum(equal, np.abs(gamma - 60.0) / ANGLE_TOLERANCE),
            right,
            np.minimum(equal, diagonal / EQUAL_TOLERANCE),
        ],
        axis=1,
    )


def _misfit_summary(misfits: np.ndarray) -> list[float]:
    """Least, second-least and median misfit of each net over the patterns, and the share of
    patterns within each of :data:`MISFIT_STEPS`."""
    out: list[float] = []
    for column in misfits.T:
        ordered = np.sort(column)
        if not len(ordered):
            out += [UNDEFINED] * (3 + len(MISFIT_STEPS))
            continue
        second = ordered[1] if len(ordered) > 1 else UNDEFINED
        out += [ordered[0], second, float(np.median(ordered))]
        out += [float(np.mean(ordered < step)) for step in MISFIT_STEPS]
    return out


def _powder(zone: dict[str, np.ndarray]) -> np.ndarray:
    """Ring profiles of all patterns in units of the material's smallest first ring, averaged
    (binned at :data:`POWDER_CENTRES`)."""
    q_min = zone["q_min"]
    ok = q_min != UNDEFINED
    if not ok.any():
        return np.full(len(POWDER_CENTRES), UNDEFINED)
    smallest = q_min[ok].min()
    profiles = np.stack([zone[f"ring_{c:g}"][ok] for c in RING_CENTRES], axis=1)
    centres = np.asarray(RING_CENTRES)
    out = np.zeros(len(POWDER_CENTRES))
    for profile, q in zip(profiles, q_min[ok], strict=True):
        k = np.floor((centres * (q / smallest) ** 2 - 1.0) * 3.0 + 0.5).astype(np.int64)
        inside = k < len(POWDER_CENTRES)
        out += np.bincount(k[inside], weights=profile[inside], minlength=len(POWDER_CENTRES))
    return out / ok.sum()


def material_features(
    features: np.ndarray, votes: np.ndarray, columns: dict[str, int]
) -> np.ndarray:
    """The :data:`MATERIAL_FEATURE_NAMES` of several valid patterns of one material.

    Parameters
    ----------
    features : numpy.ndarray, (n, F)
        The patterns' model inputs (finite rows).
    votes : numpy.ndarray, (n, 6)
        Their crystal-system votes in :data:`CRYSTAL_SYSTEMS` order (tree votes or class
        probabilities: only shares are used).
    columns : dict
        :func:`zone_columns` of the model.

    Returns
    -------
    numpy.ndarray
        (len(MATERIAL_FEATURE_NAMES),); does not depend on the order of the patterns.
    """
    x = np.asarray(features, dtype=np.float64)
    v = np.asarray(votes, dtype=np.float64)
    if x.ndim != 2 or v.shape != (x.shape[0], len(CRYSTAL_SYSTEMS)) or x.shape[0] == 0:
        raise ValueError(
            f"features {x.shape} and votes {v.shape} must be (n, F) and (n, 6) with n >= 1"
        )
    zone = {name: x[:, j] for name, j in columns.items()}
    shares = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
    ordered = np.sort(shares, axis=1)
    weight = ordered[:, -1] - ordered[:, -2]
    difference = np.bincount(np.argmax(shares, axis=1), weights=weight, minlength=len(shares[0]))
    difference = difference / max(float(difference.sum()), 1e-12)
    nets = net_types(zone)
    symmetry = []
    for name in _SYMMETRY:
        values = zone[name][zone[name] != UNDEFINED]
        symmetry += [values.mean(), values.max()] if len(values) else [UNDEFINED, UNDEFINED]
    rot3, rot4, rot6 = (zone[name].max() for name in ("rot3", "rot4", "rot6"))
    square, hexagonal = nets[:, 0] > 0, nets[:, 1] > 0
    g1 = zone["g1"]
    both = square.any() and hexagonal.any()
    g1_ratio = g1[hexagonal].min() / g1[square].min() if both else UNDEFINED
    cells = _cell_q2(zone)
    # first rings: also of patterns without a 2-D cell (one spot's position there)
    rings = zone["q_min"][zone["q_min"] != UNDEFINED] ** 2
    return np.concatenate(
        [
            shares.mean(axis=0),
            difference,
            nets.mean(axis=0),
            nets.max(axis=0),
            symmetry,
            [max(rot3, rot6) * rot4, rot3 * rot4, rot6 * rot4, g1_ratio, float(len(x))],
            _cubic_index(np.concatenate([cells, rings])),
            _powder(zone),
            _misfit_summary(net_misfits(zone)),
            _cubic_index(cells, RELATIVE_BASES, RELATIVE_TOLERANCES, relative=True),
        ]
    )


def draw_subsets(
    material: np.ndarray, draws: int, n_range: tuple[int, int], seed: int
) -> list[np.ndarray]:
    """``draws`` random subsets of each material's patterns (sizes uniform in ``n_range``, at
    most all of them), as indices into ``material``."""
    rng = np.random.default_rng(seed)
    subsets = []
    for m in np.unique(material):
        idx = np.flatnonzero(material == m)
        for _ in range(draws):
            n = int(rng.integers(n_range[0], n_range[1] + 1))
            subsets.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
    return subsets


AGGREGATE_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "l2_regularization": 1.0,
}
"""Hyperparameters of the material classifier."""
TRAINING_DRAWS = 12
"""Random subsets of each training material's patterns."""
TRAINING_SIZES = (2, 14)
"""Smallest and largest subset size in training."""


def fit_material_classifier(
    features: np.ndarray,
    votes: np.ndarray,
    material: np.ndarray,
    crystal_system: np.ndarray,
    columns: dict[str, int],
    seed: int = 0,
) -> HistGradientBoostingClassifier:
    """Fit the material classifier on random subsets of the training materials' patterns.

    Parameters
    ----------
    features : numpy.ndarray, (N, F)
        Model inputs of the valid training patterns.
    votes : numpy.ndarray, (N, 6)
        Their *out-of-fold* system votes (:func:`~.fitting.out_of_fold_system_votes`).
    material, crystal_system : numpy.ndarray, (N,)
        Material index and crystal system of each pattern.
    columns : dict
        :func:`zone_columns` of the model.
    seed : int
        Seed of the subsets and of the classifier.
    """
    subsets = draw_subsets(np.asarray(material), TRAINING_DRAWS, TRAINING_SIZES, seed)
    rows = np.stack([material_features(features[s], votes[s], columns) for s in subsets])
    labels = np.asarray(crystal_system)[[s[0] for s in subsets]]
    model = HistGradientBoostingClassifier(**AGGREGATE_PARAMS, random_state=seed)
    return model.fit(rows, labels)
