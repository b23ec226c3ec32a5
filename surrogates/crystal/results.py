"""What the crystal predictor returns: per-pattern and aggregated predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS


@dataclass
class PatternPrediction:
    """Per-pattern predictions for N patterns (all arrays have length N).

    Attributes
    ----------
    crystal_system : numpy.ndarray of str, (N,)
        The crystal-system classifier's winner (the majority of a forest's trees); "" for an
        invalid pattern.
    system_votes : numpy.ndarray of float, (N, 6)
        Votes, columns in :data:`CRYSTAL_SYSTEMS` order (zeros when invalid): a forest's tree
        votes (counts summing to its trees) or a boosted classifier's class probabilities
        (summing to 1).
    system_confidence : numpy.ndarray, (N,)
        Share of the votes for ``crystal_system`` (NaN when invalid).
    difference_weight : numpy.ndarray, (N,)
        (votes of the winner − votes of the runner-up) / all votes (NaN when invalid): the
        weight of the pattern in difference aggregation.
    space_group : numpy.ndarray of int, (N,)
        Majority of the routed space-group trees; 0 (not a space group) when invalid.
    space_group_confidence : numpy.ndarray, (N,)
        Share of those trees voting for ``space_group`` (NaN when invalid).
    space_group_difference_weight : numpy.ndarray, (N,)
        Difference weight of the space-group votes (NaN when invalid).
    lattice : numpy.ndarray, (N, 3)
        (a, b, c) in Å, median of the routed lattice trees (NaN when invalid).
    valid : numpy.ndarray of bool, (N,)
        False for patterns that could not be featurized (e.g. fewer than 5 spots).
    routed_system : numpy.ndarray of str, (N,)
        Crystal system whose sub-models made the space-group and lattice predictions: the
        predicted system, or the one forced with ``route_to`` ("" when invalid).
    """

    crystal_system: np.ndarray
    system_votes: np.ndarray
    system_confidence: np.ndarray
    difference_weight: np.ndarray
    space_group: np.ndarray
    space_group_confidence: np.ndarray
    space_group_difference_weight: np.ndarray
    lattice: np.ndarray
    valid: np.ndarray
    routed_system: np.ndarray

    @classmethod
    def empty(cls, valid: np.ndarray) -> PatternPrediction:
        """A prediction of ``len(valid)`` patterns with every field at its invalid value.

        Parameters
        ----------
        valid : numpy.ndarray of bool, (N,)
            Stored as :attr:`valid`; the predictor fills in the valid rows.
        """
        n = valid.shape[0]
        return cls(
            crystal_system=np.full(n, "", dtype="<U12"),
            system_votes=np.zeros((n, len(CRYSTAL_SYSTEMS)), dtype=np.float64),
            system_confidence=np.full(n, np.nan),
            difference_weight=np.full(n, np.nan),
            space_group=np.zeros(n, dtype=np.int64),
            space_group_confidence=np.full(n, np.nan),
            space_group_difference_weight=np.full(n, np.nan),
            lattice=np.full((n, 3), np.nan),
            valid=valid,
            routed_system=np.full(n, "", dtype="<U12"),
        )

    def __len__(self) -> int:
        return int(self.valid.shape[0])

    def row(self, i: int) -> dict[str, Any]:
        """Prediction of pattern ``i`` as a plain dict (votes keyed by crystal system)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"pattern index {i} is out of range for {n} patterns")
        a, b, c = (float(x) for x in self.lattice[i])
        return {
            "crystal_system": str(self.crystal_system[i]),
            "system_confidence": float(self.system_confidence[i]),
            "difference_weight": float(self.difference_weight[i]),
            "space_group": int(self.space_group[i]),
            "space_group_confidence": float(self.space_group_confidence[i]),
            "space_group_difference_weight": float(self.space_group_difference_weight[i]),
            "a": a,
            "b": b,
            "c": c,
            "valid": bool(self.valid[i]),
            "routed_system": str(self.routed_system[i]),
            "system_votes": {
                s: float(v) for s, v in zip(CRYSTAL_SYSTEMS, self.system_votes[i], strict=True)
            },
        }

    def to_dataframe(self) -> Any:
        """A pandas DataFrame, one row per pattern (votes as ``votes_<system>`` columns)."""
        import pandas as pd

        columns: dict[str, Any] = {
            "crystal_system": self.crystal_system,
            "system_confidence": self.system_confidence,
            "difference_weight": self.difference_weight,
            "space_group": self.space_group,
            "space_group_confidence": self.space_group_confidence,
            "space_group_difference_weight": self.space_group_difference_weight,
            "a": self.lattice[:, 0],
            "b": self.lattice[:, 1],
            "c": self.lattice[:, 2],
            "valid": self.valid,
            "routed_system": self.routed_system,
        }
        for j, system in enumerate(CRYSTAL_SYSTEMS):
            columns[f"votes_{system}"] = self.system_votes[:, j]
        return pd.DataFrame(columns)


@dataclass
class AggregatePrediction:
    """One prediction for several patterns of the same material.

    Attributes
    ----------
    crystal_system : str
        The material classifier's choice (``aggregation="learned"``), or the system with the
        largest summed difference weight (``"difference"``, the paper).
    confidence : float
        Its probability, or its weight / the sum of all weights (0.0 when every pattern was a
        tie).
    system_weights : dict[str, float]
        Each of the six crystal systems' probability, or summed difference weight.
    space_group : int
        The space group from the winning system's space-group model, through which *all*
        valid patterns are routed: the product of their smoothed votes (``"learned"``) or
        their difference aggregate (``"difference"``).
    space_group_confidence : float
        Its normalized product, or its weight / the total space-group weight.
    space_group_weights : dict[int, float]
        Normalized product, or summed weight, of each space group known to the winning
        system's model.
    lattice : numpy.ndarray, (3,)
        (a, b, c) in Å: median over patterns of the winning system's lattice predictions.
    n_patterns : int
        Number of valid patterns used.
    n_rejected : int
        Number of invalid patterns left out (too few spots, bad values).
    aggregation : str
        ``"learned"`` (crystal system by the material classifier, space group by the vote
        product) or ``"difference"`` (both by difference aggregation, the paper).
    centring : str or None
        ``"P"``, ``"I"`` or ``"F"``: the centring the spots of a cubic aggregate showed on its
        lattice constant (with Bragg lists only; :func:`~.centring.cubic_centring`), by which
        ``space_group_weights`` were weighed (:func:`~.centring.weigh_by_centring`). None:
        not cubic, no lists, or not decided.
    """

    crystal_system: str
    confidence: float
    system_weights: dict[str, float]
    space_group: int
    space_group_confidence: float
    space_group_weights: dict[int, float]
    lattice: np.ndarray
    n_patterns: int
    n_rejected: int = 0
    aggregation: str = "difference"
    centring: str | None = None
