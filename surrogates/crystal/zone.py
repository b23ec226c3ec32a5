"""Zone-lattice and pattern-symmetry features of a Bragg list (an addition to the paper).

The paper's radial basis (:func:`~uedsteer.surrogates.crystal.features.radial_basis`) bins
spots in |q| with a width of 0.05 1/Å and describes their angles by harmonics; it cannot see
whether two reciprocal vectors are *equally* long or *exactly* at right angles, and it does not
compare the intensities of symmetry-related spots. Those are what a crystallographer reads off a
zone-axis pattern first: the 2-D reciprocal lattice (square, hexagonal, rectangular, oblique)
and the projected symmetry of the intensities (2-, 3-, 4-, 6-fold axes and mirrors).

:func:`zone_lattice_features` measures them per pattern (:data:`ZONE_FEATURE_NAMES`):

* the Gauss-reduced 2-D basis g1, g2 of the spot lattice (|g1| ≤ |g2| ≤ |g1 ± g2|), refined
  by least squares over every spot it indexes (so a measured cell is as precise as its outer
  spots allow, not as its two shortest): lengths (1/Å), their ratio, the angle between them
  (60°–90°) and |g1 + g2|, |g1 − g2| over |g1|;
* for n = 2, 3, 4, 6: the share of intensity that a rotation by 360°/n maps onto a spot of at
  least the same intensity (1 for an n-fold symmetric pattern);
* the same for the eight candidate mirror lines along g1, g2, g1 ± g2 and their normals
  (lines that coincide, as g1's normal and g2 in a rectangular cell, count twice): the best,
  second-best and fourth-best score and how many exceed 0.8 (8 for a square pattern with
  4mm symmetry, 4 for a rectangular one with 2mm);
* the share of intensity on the lattice of g1, g2 (below 1 when the reduced cell misses spots,
  e.g. for a centred cell picked up through a weak row), the number of spots, the largest |q|,
  the number of spots above 1 % of the total intensity and the intensity-weighted mean |q|;
* the smallest |q| of a spot (the first ring), defined as soon as one spot besides the central
  beam is there: the length scale of the pattern when g1 is not (a systematic row); with a
  2-D cell, the lengths of the spots on it are those of the refined lattice;
* the ring profile: the share of intensity at each (|q| / q_min)² = 1, 1.5, 2, …, 16.5 (bins
  of width 0.5). In units of the pattern's own first ring the profile does not depend on the
  lattice constant, so a structure type reads the same at any size: the sequence of allowed
  rings (N = h² + k² + l² over the first one: 1, 2, 3, 4, 5 … for a primitive cubic row,
  1, 4/3, 8/3, 11/3 … for face-centred cubic) and their relative intensities (rock salt against
  zinc blende) are what set space groups apart.

Undefined values (fewer than three spots besides the central beam, or all of them on one line)
are −1, a value no defined feature takes, so forests can split on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from .bragg_lists import CENTRAL_TOLERANCE, _as_patterns, validate_bragg

_CELL_FEATURE_NAMES = (
    "g1",
    "g2",
    "g2_over_g1",
    "gamma_deg",
    "g1_plus_g2_over_g1",
    "g1_minus_g2_over_g1",
    "rot2",
    "rot3",
    "rot4",
    "rot6",
    "mirror_best",
    "mirror_second",
    "mirror_fourth",
    "mirrors_above_0.8",
    "on_lattice",
    "n_spots",
    "q_max",
    "n_strong",
    "q_mean",
    "q_min",
)
RING_WIDTH = 0.5
"""Width of the ring-profile bins in (|q| / q_min)²."""
RING_CENTRES = tuple(1.0 + RING_WIDTH * k for k in range(32))
"""Bin centres of the ring profile in (|q| / q_min)², 1 … 16.5."""
ZONE_FEATURE_NAMES = _CELL_FEATURE_NAMES + tuple(f"ring_{c:g}" for c in RING_CENTRES)
"""Column names of :func:`zone_lattice_features`, in order: the cell, symmetry and size
features, q_min, then the ring profile ``ring_1`` … ``ring_16.5``."""

N_ZONE_FEATURES = len(ZONE_FEATURE_NAMES)
_N_CELL = len(_CELL_FEATURE_NAMES) - 1  # columns before q_min
UNDEFINED = -1.0
_MIN_SINE = 0.2  # g2 must make at least ~11.5° with g1 to count as a second direction
_LATTICE_TOLERANCE = 0.1  # |hk − round(hk)| below this: the spot is on the reduced lattice


def _symmetry_score(tree: cKDTree, intensity: np.ndarray, moved: np.ndarray, tol: float):
    """Share of intensity that the operation maps onto a spot (min of the two intensities)."""
    dist, idx = tree.query(moved, distance_upper_bound=tol)
    hit = np.isfinite(dist)
    return float(np.minimum(intensity[hit], intensity[idx[hit]]).sum())


def _reduced_basis(q: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Shortest spot and the shortest one not parallel to it, Gauss-reduced."""
    order = np.argsort(r, kind="stable")
    g1 = q[order[0]]
    cross = np.abs(g1[0] * q[order, 1] - g1[1] * q[order, 0]) / (r[order[0]] * r[order])
    off = np.flatnonzero(cross > _MIN_SINE)
    if not len(off):
        return None
    g2 = q[order[off[0]]]
    for _ in range(16):
        if g2 @ g2 < g1 @ g1:
            g1, g2 = g2, g1
        m = np.round((g1 @ g2) / (g1 @ g1))
        if m == 0:
            break
        g2 = g2 - m * g1
    return g1, g2


def _indexed(q: np.ndarray, g1: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest integer indices (h, k) of every spot on the basis g1, g2, and which spots lie on
    it (every index within :data:`_LATTICE_TOLERANCE` of an integer)."""
    hk = np.linalg.solve(np.array([g1, g2]).T, q.T).T
    index = np.round(hk)
    return index, np.abs(hk - index).max(axis=1) < _LATTICE_TOLERANCE


def _refined(q: np.ndarray, g1: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reduced basis refined by least squares over every spot it indexes.

    g1 and g2 come from single spots, so they carry each spot's position error in full; the
    basis that best places all indexed spots (h g1 + k g2) carries it divided by the lever arm
    of the outer spots. Exact lattices are unchanged.
    """
    index, on = _indexed(q, g1, g2)
    if on.sum() < 3 or np.linalg.matrix_rank(index[on]) < 2:
        return g1, g2
    basis = np.linalg.lstsq(index[on], q[on], rcond=None)[0]
    r1, r2 = basis
    return (r1, r2) if r1 @ r1 <= r2 @ r2 else (r2, r1)


def _ring_profile(r: np.ndarray, inten: np.ndarray) -> np.ndarray:
    """Share of intensity per bin of (r / r.min())² (see :data:`RING_CENTRES`)."""
    k = np.floor(((r / r.min()) ** 2 - RING_CENTRES[0]) / RING_WIDTH + 0.5).astype(np.int64)
    inside = k < len(RING_CENTRES)
    return np.bincount(k[inside], weights=inten[inside], minlength=len(RING_CENTRES))


def _one(bragg: np.ndarray) -> np.ndarray:
    out = np.full(N_ZONE_FEATURES, UNDEFINED)
    q = bragg[:, :2].astype(np.float64)
    r = np.hypot(q[:, 0], q[:, 1])
    keep = r > CENTRAL_TOLERANCE
    q, r, inten = q[keep], r[keep], bragg[keep, 2].astype(np.float64)
    # q_min and the ring profile are defined even without a 2-D lattice
    if len(r):
        out[_N_CELL] = r.min()
    total = inten.sum()
    if total > 0:
        inten = inten / total
        out[_N_CELL + 1 :] = _ring_profile(r, inten)
    if len(r) < 3 or total <= 0:
        return out
    basis = _reduced_basis(q, r)
    if basis is None:
        return out
    g1, g2 = _refined(q, *basis)
    index, on = _indexed(q, g1, g2)
    # the rings in units of the first one, from the refined lattice where a spot is on it:
    # one spot's position error on q_min would move every ring of the profile
    r_lattice = r.copy()
    r_lattice[on] = np.linalg.norm(index[on] @ np.array([g1, g2]), axis=1)
    out[_N_CELL] = r_lattice.min()
    out[_N_CELL + 1 :] = _ring_profile(r_lattice, inten)
    a, b = float(np.linalg.norm(g1)), float(np.linalg.norm(g2))
    gamma = np.degrees(np.arccos(np.clip(abs(g1 @ g2) / (a * b), 0.0, 1.0)))
    tree = cKDTree(q)
    tol = 0.03 * a + 0.005
    rotations = []
    for n in (2, 3, 4, 6):
        t = 2 * np.pi / n
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        rotations.append(_symmetry_score(tree, inten, q @ rot.T, tol))
    mirrors = []
    for v in (g1, g2, g1 + g2, g1 - g2):
        for u in (v, np.array([-v[1], v[0]])):
            u = u / np.linalg.norm(u)
            mirrors.append(_symmetry_score(tree, inten, q @ (2 * np.outer(u, u) - np.eye(2)), tol))
    mirrors = np.sort(mirrors)[::-1]
    out[:_N_CELL] = (
        a,
        b,
        b / a,
        gamma,
        np.linalg.norm(g1 + g2) / a,
        np.linalg.norm(g1 - g2) / a,
        *rotations,
        mirrors[0],
        mirrors[1],
        mirrors[3],
        float((mirrors > 0.8).sum()),
        float(inten[on].sum()),
        float(len(r)),
        float(r.max()),
        float((inten > 0.01).sum()),
        float(r @ inten),
    )
    return out


def zone_lattice_features(bragg_lists: Any) -> np.ndarray:
    """Zone-lattice and symmetry features of one or many Bragg lists.

    Parameters
    ----------
    bragg_lists : (n, 3) array or sequence of them
        Spots (qx, qy, I) in 1/Å; a spot within ``CENTRAL_TOLERANCE`` of the origin is the
        central beam and ignored. Invalid lists (NaN, negative intensities, wrong shape) raise
        ``ValueError`` naming the pattern.

    Returns
    -------
    numpy.ndarray
        (N, :data:`N_ZONE_FEATURES`) features, columns :data:`ZONE_FEATURE_NAMES`; −1 where
        undefined.
    """
    patterns, _ = _as_patterns(bragg_lists)
    rows = [_one(validate_bragg(p, f"bragg_lists[{i}]")) for i, p in enumerate(patterns)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), N_ZONE_FEATURES)
