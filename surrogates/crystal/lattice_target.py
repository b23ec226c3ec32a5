"""What the lattice regressors learn: (a, b, c) in Å, or a multiple of the pattern's own scale.

The paper's regressors learn (a, b, c) in Å. With the zone features a pattern
measures its own length scale s (the shortest reciprocal lattice vector g1, or the first
ring's |q| where no 2-D lattice is defined), and the lattice regressors learn
log(a·s), log(b·s), log(c·s) instead (``lattice_target="scaled"``, the default with zone
features): a·s is how many times the real-space constant spans the spacing 1/s, a
dimensionless multiple (1, √2, √3, 2, … for cubic lattices) that structure types share
whatever their size, and the prediction exp(median of the trees)/s carries the pattern's own
measured scale. Regressing Å directly, a forest can only return constants it has seen, so it
memorizes materials; on the stores' material-disjoint test split (equal training weights)
the scaled target cut the median error of a from 0.23 to 0.02 Å (hexagonal) and 0.56 to
0.31 Å (tetragonal), of c from 0.91 to 0.41 Å (hexagonal). The radial basis alone keeps the
paper's target.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LATTICE_TARGETS = ("direct", "scaled")
"""What the lattice regressors learn: (a, b, c) in Å (the paper), or log of (a, b, c) times the
pattern's own length scale (needs the zone features; see the module docstring)."""


def check_lattice_target(lattice_target: str, featurizer: Any) -> None:
    """Refuse an unknown target, or ``"scaled"`` without the zone features g1 and q_min."""
    if lattice_target not in LATTICE_TARGETS:
        raise ValueError(
            f"lattice_target={lattice_target!r} is not known; allowed: {LATTICE_TARGETS}"
        )
    if lattice_target == "scaled" and not {"g1", "q_min"} <= set(featurizer.zone_features):
        raise ValueError(
            f"lattice_target='scaled' needs the zone features g1 and q_min (features="
            f"{featurizer.feature_set!r} has {list(featurizer.zone_features)}); use 'direct'"
        )


def to_lattice_target(
    lattice: np.ndarray, features: np.ndarray, lattice_target: str, featurizer: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The regressors' training target for (N, 3) lattices and the rows that can learn it.

    ``"direct"``: the lattices themselves, every row. ``"scaled"``: log(a·s), log(b·s),
    log(c·s) with s the pattern's length scale (:meth:`CrystalFeaturizer.lattice_scale`); rows
    without a scale (no spot besides the central beam) are left out.
    """
    target, usable = lattice, np.ones(lattice.shape[0], dtype=bool)
    if lattice_target == "scaled":
        scale = featurizer.lattice_scale(features)
        usable = np.isfinite(scale)  # every pattern with a spot besides the central beam
        target = np.log(lattice * np.nan_to_num(scale, nan=1.0)[:, None])
    return target, usable


def from_lattice_target(
    median: np.ndarray, features: np.ndarray, lattice_target: str, featurizer: Any
) -> np.ndarray:
    """(a, b, c) in Å from the trees' median prediction of the target (inverse of
    :func:`to_lattice_target`)."""
    if lattice_target == "direct":
        return median
    return np.exp(median) / featurizer.lattice_scale(features)[:, None]
