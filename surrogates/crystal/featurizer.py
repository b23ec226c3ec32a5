"""The crystal models' input: Bragg lists to feature vectors, with every setting validated once.

A :class:`CrystalFeaturizer` holds the settings that decide what a model sees (which feature
set, the detector window, orientation, the radial basis's size) and turns Bragg lists into an
(N, ``n_features``) array and a validity mask. The crystal predictor takes one as a constructor
argument and saves its settings with the models, so a loaded model featurizes exactly as it
was trained.

Feature sets: ``"radial"`` is the paper's radial basis
(:func:`~uedsteer.surrogates.crystal.features.radial_basis`, 1,066 features), ``"zone"`` the
zone-lattice and symmetry features (:mod:`~uedsteer.surrogates.crystal.zone`), and
``"radial+zone"`` both, radial first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .bragg_lists import MIN_SPOTS, _check_min_spots, prepare_bragg
from .features import DQ, N_RADIAL, P_MAX, radial_basis
from .zone import ZONE_FEATURE_NAMES, zone_lattice_features

FEATURE_SETS = ("radial", "zone", "radial+zone")
"""Model inputs: the paper's radial basis, the zone-lattice features (:mod:`.zone`), or both."""


def _positive_int(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= {least}")
    return int(value)


def _check_q_range(q_range: Any) -> tuple[float, float] | None:
    if q_range is None:
        return None
    try:
        lo, hi = (float(v) for v in q_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"q_range={q_range!r} is not allowed; use None or (q_min, q_max) in 1/Å"
        ) from None
    if not (0.0 <= lo < hi) or math.isnan(hi):
        raise ValueError(
            f"q_range={q_range!r} is not allowed; use None or (q_min, q_max) with "
            "0 <= q_min < q_max (1/Å)"
        )
    return lo, hi


class CrystalFeaturizer:
    """Bragg lists → crystal-model features (validated settings, scikit-learn style).

    Parameters
    ----------
    feature_set : {"radial", "zone", "radial+zone"}
        Which features (see the module docstring).
    orient : bool
        Rotate each list so its shortest spot lies along +x
        (:func:`~uedsteer.surrogates.crystal.bragg_lists.orient_bragg`) before featurizing.
    q_range : (float, float), optional
        Detector window (q_min, q_max) in 1/Å applied to each list first
        (:func:`~uedsteer.surrogates.crystal.bragg_lists.crop_bragg`); ``0 <= q_min < q_max``.
    zone_features : sequence of str, optional
        The zone-feature columns, in order; default all of
        :data:`~uedsteer.surrogates.crystal.zone.ZONE_FEATURE_NAMES` for a feature set with
        ``"zone"`` and none otherwise (a model trained before a feature was added keeps its
        own list).
    dq, n_radial, p_max : float, int, int
        Radial step (1/Å), radial bins and highest angular order of the radial basis (the
        paper's 0.05, 41, 12).
    min_spots : int
        Fewest spots (central beam included) of a usable list (>= 2).

    Raises
    ------
    ValueError
        On a bad setting, in one line naming the argument, its value and what is allowed.
    """

    def __init__(
        self,
        feature_set: str = "radial",
        *,
        orient: bool = True,
        q_range: tuple[float, float] | None = None,
        zone_features: Sequence[str] | None = None,
        dq: float = DQ,
        n_radial: int = N_RADIAL,
        p_max: int = P_MAX,
        min_spots: int = MIN_SPOTS,
    ) -> None:
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"feature_set={feature_set!r} is not known; allowed: {FEATURE_SETS}")
        if not isinstance(orient, bool | np.bool_):
            raise ValueError(f"orient={orient!r} is not allowed; use True or False")
        if isinstance(dq, bool) or not isinstance(dq, int | float) or not 0 < dq < math.inf:
            raise ValueError(f"dq={dq!r} is not allowed; use a finite step > 0 in 1/Å")
        if zone_features is None:
            zone_features = ZONE_FEATURE_NAMES if "zone" in feature_set else ()
        if isinstance(zone_features, str):
            raise ValueError(
                f"zone_features={zone_features!r} is not allowed; use a sequence of names "
                f"among {ZONE_FEATURE_NAMES}"
            )
        unknown = [name for name in zone_features if name not in ZONE_FEATURE_NAMES]
        if unknown:
            raise ValueError(
                f"zone_features={list(zone_features)} names {unknown} that are not computed; "
                f"allowed: {ZONE_FEATURE_NAMES}"
            )
        self.feature_set = feature_set
        self.orient = bool(orient)
        self.q_range = _check_q_range(q_range)
        self.zone_features: tuple[str, ...] = tuple(zone_features)
        self.dq = float(dq)
        self.n_radial = _positive_int("n_radial", n_radial, 1)
        self.p_max = _positive_int("p_max", p_max, 0)
        self.min_spots = _check_min_spots(min_spots)

    def __repr__(self) -> str:
        default_zone = ZONE_FEATURE_NAMES if "zone" in self.feature_set else ()
        zone = "" if self.zone_features == default_zone else f", zone_features={self.zone_features}"
        return (
            f"CrystalFeaturizer({self.feature_set!r}, orient={self.orient}, "
            f"q_range={self.q_range}{zone}, dq={self.dq}, n_radial={self.n_radial}, "
            f"p_max={self.p_max}, min_spots={self.min_spots})"
        )

    @property
    def n_radial_features(self) -> int:
        """Radial-basis columns (0 without the radial basis)."""
        return 2 * self.n_radial * (self.p_max + 1) if "radial" in self.feature_set else 0

    @property
    def n_features(self) -> int:
        """Length of a feature vector (1066 for the paper's radial basis, 20 for the zone
        features, 1086 for both)."""
        return self.n_radial_features + len(self.zone_features)

    def check_features(self, features: Any, name: str = "features") -> np.ndarray:
        """``features`` as a float64 (N, ``n_features``) array (one row may be given as (F,))."""
        try:
            x = np.asarray(features, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric (N, {self.n_features}) array") from None
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"{name} must have shape (N, {self.n_features}) (radial basis with dq={self.dq}, "
                f"n_radial={self.n_radial}, p_max={self.p_max}, feature set "
                f"{self.feature_set!r}); got shape {np.shape(features)}"
            )
        return x

    def lattice_scale(self, features: np.ndarray) -> np.ndarray:
        """Each pattern's length scale s (1/Å): g1 (the zone's shortest reciprocal lattice
        vector) where the pattern has a 2-D lattice, else the smallest |q| of a spot; NaN where
        neither is defined. Needs the zone features ``g1`` and ``q_min``.
        """
        off = self.n_radial_features
        g1 = features[:, off + self.zone_features.index("g1")]
        q_min = features[:, off + self.zone_features.index("q_min")]
        s = np.where(g1 > 0, g1, q_min).astype(np.float64)
        return np.where(s > 0, s, np.nan)

    def prepare(self, bragg_lists: Any) -> list[np.ndarray]:
        """Crop to the q window and orient, as done before featurization."""
        return prepare_bragg(bragg_lists, self.q_range, self.orient)

    def transform(self, bragg_lists: Any, preprocess: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Features of Bragg lists.

        Parameters
        ----------
        bragg_lists : array or sequence of arrays
            One (n, 3) Bragg list (qx, qy, I) or a sequence of them.
        preprocess : bool
            Apply the authors' preprocessing in the radial basis (drop the central beam, scale
            the intensities to sum 0.3); the models are trained with it.

        Returns
        -------
        tuple
            (N, ``n_features``) features (NaN rows for lists with too few spots) and the
            (N,) mask of usable lists.
        """
        if (
            isinstance(bragg_lists, np.ndarray)
            and bragg_lists.ndim == 2
            and (bragg_lists.dtype != object)
        ):
            bragg_lists = [bragg_lists]
        bragg_lists = self.prepare(bragg_lists)
        zone_only = self.feature_set == "zone"
        # the zone model needs only the radial basis's validity (the authors' preprocessing);
        # one bin of one harmonic gives it at a fraction of the cost
        x, valid = radial_basis(
            bragg_lists,
            preprocess=preprocess,
            dq=self.dq,
            n_radial=1 if zone_only else self.n_radial,
            p_max=0 if zone_only else self.p_max,
            min_spots=self.min_spots,
            on_invalid="nan",
        )
        valid = np.asarray(valid, dtype=bool)
        if self.feature_set == "radial":
            return x, valid
        zone = zone_lattice_features(bragg_lists)
        if self.zone_features != ZONE_FEATURE_NAMES:
            zone = zone[:, [ZONE_FEATURE_NAMES.index(name) for name in self.zone_features]]
        zone[~valid] = np.nan  # the same lists are usable (≥ min_spots) whatever the features
        return (zone if zone_only else np.hstack([x, zone])), valid

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready (what a saved model records)."""
        return {
            "feature_set": self.feature_set,
            "orient": self.orient,
            "q_range": None if self.q_range is None else list(self.q_range),
            "zone_features": list(self.zone_features),
            "dq": self.dq,
            "n_radial": self.n_radial,
            "p_max": self.p_max,
            "min_spots": self.min_spots,
        }
