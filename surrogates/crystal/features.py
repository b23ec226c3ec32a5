"""Radial-basis features of electron-diffraction Bragg lists (Gleason et al. 2024).

Bragg lists (columns qx, qy, I) and their checks and preprocessing are described in
:mod:`~uedsteer.surrogates.crystal.bragg_lists`.

Each pattern is decomposed into complex coefficients (paper eqs. 1–2)

    τ_{m,p} = Σ_j max(1 − ||q_j| − mΔq| / Δq, 0) · exp(i p φ_j) · I_j,   φ_j = atan2(qy_j, qx_j),

with Δq = 0.05 1/Å, m = 0 … 40 (41 triangular radial bins of full width 2Δq that overlap by Δq,
reaching 2 1/Å) and p = 0 … 12, i.e. 41 × 13 = 533 complex numbers, stored as 1,066 real
features.

Feature ordering (``N_FEATURES = 1066``)
----------------------------------------
``features[:533]`` are the magnitudes ``|τ_{m,p}|`` and ``features[533:]`` the arguments
``arg τ_{m,p}`` in (−π, π] (``numpy.angle``; the argument of an exact zero is 0). Inside each
block the order is m-major: the coefficient (m, p) sits at index ``m * 13 + p``, so
``features[:533].reshape(41, 13)[m, p] == |τ_{m,p}|``. Use :func:`feature_index` rather than
hard-coding the arithmetic.

Unless told otherwise, :func:`radial_basis` first preprocesses each list as the authors' public
code does (:func:`~uedsteer.surrogates.crystal.bragg_lists.preprocess_bragg`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np

# defined once, with the space-group ranges; re-exported here for the feature users
from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS as CRYSTAL_SYSTEMS

from .bragg_lists import (
    INTENSITY_SUM,
    MIN_SPOTS,
    _as_patterns,
    _check_min_spots,
    preprocess_bragg,
    validate_bragg,
)

DQ = 0.05
"""Radial step Δq of the basis in 1/Å (no 2π)."""

N_RADIAL = 41
"""Number of radial bins m = 0 … 40 (up to 2 1/Å)."""

P_MAX = 12
"""Highest angular order p (p = 0 … 12)."""

N_FEATURES = 2 * N_RADIAL * (P_MAX + 1)
"""Length of the real feature vector: 533 magnitudes then 533 arguments = 1066."""

_CHUNK_SPOTS = 65_536  # spots per vectorized block: bounds temporaries to ~20 MB

_ON_INVALID = ("raise", "nan")


def feature_index(
    m: int,
    p: int,
    part: Literal["abs", "arg"] = "abs",
    p_max: int = P_MAX,
    n_radial: int = N_RADIAL,
) -> int:
    """Position of the feature for radial order ``m`` and angular order ``p``.

    Parameters
    ----------
    m, p : int
        Radial (0 … n_radial − 1) and angular (0 … p_max) orders.
    part : {"abs", "arg"}
        The magnitude block (first half) or the argument block (second half).
    p_max, n_radial : int
        Basis size; the defaults are the paper's.

    Returns
    -------
    int
        ``m * (p_max + 1) + p``, plus ``n_radial * (p_max + 1)`` for ``part="arg"``.
    """
    if not 0 <= m < n_radial:
        raise ValueError(f"m={m} is outside the radial orders 0 … {n_radial - 1}")
    if not 0 <= p <= p_max:
        raise ValueError(f"p={p} is outside the angular orders 0 … {p_max}")
    if part not in ("abs", "arg"):
        raise ValueError(f"part={part!r} is not allowed; use 'abs' or 'arg'")
    offset = 0 if part == "abs" else n_radial * (p_max + 1)
    return offset + m * (p_max + 1) + p


def _segment_starts(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start positions of runs of equal, sorted ``pid`` and each spot's run number."""
    change = np.empty(pid.shape, dtype=bool)
    change[:1] = True
    np.not_equal(pid[1:], pid[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    seg = np.cumsum(change) - 1
    return starts, seg


def _tau(
    data: np.ndarray, pid: np.ndarray, n_patterns: int, dq: float, n_radial: int, p_max: int
) -> np.ndarray:
    """Complex coefficients τ (n_patterns, n_radial, p_max + 1) of concatenated spots.

    ``pid`` (sorted, 0 … n_patterns − 1) gives each spot's pattern.
    """
    n_p = p_max + 1
    block = n_radial * n_p
    tau = np.zeros(n_patterns * block, dtype=np.complex128)
    p_range = np.arange(n_p)
    for lo in range(0, data.shape[0], _CHUNK_SPOTS):
        qx, qy, inten = data[lo : lo + _CHUNK_SPOTS].T
        first = int(pid[lo])
        local = pid[lo : lo + _CHUNK_SPOTS] - first
        n_local = int(local[-1]) + 1
        r = np.hypot(qx, qy) / dq
        m0 = np.floor(r).astype(np.int64)
        frac = r - m0
        # The triangle max(1 - |r - m|, 0) is non-zero only for m = floor(r) (weight 1 - frac)
        # and m = floor(r) + 1 (weight frac); bins beyond n_radial - 1 do not exist.
        m = np.concatenate([m0, m0 + 1])
        weight = np.concatenate([(1.0 - frac) * inten, frac * inten])
        spot = np.concatenate([np.arange(r.size), np.arange(r.size)])
        keep = (m < n_radial) & (weight != 0)
        m, weight, spot = m[keep], weight[keep], spot[keep]
        # exp(i p φ) by repeated multiplication of the unit phasor (φ = atan2(qy, qx); 0 at q = 0)
        phasor = np.exp(1j * np.arctan2(qy, qx))
        powers = np.empty((r.size, n_p), dtype=np.complex128)
        powers[:, 0] = 1.0
        for p in range(1, n_p):
            np.multiply(powers[:, p - 1], phasor, out=powers[:, p])
        terms = powers[spot] * weight[:, None]
        index = ((local[spot] * n_radial + m)[:, None] * n_p + p_range).ravel()
        size = n_local * block
        chunk = np.bincount(index, weights=terms.real.ravel(), minlength=size) + 1j * np.bincount(
            index, weights=terms.imag.ravel(), minlength=size
        )
        tau[first * block : (first + n_local) * block] += chunk
    return tau.reshape(n_patterns, n_radial, n_p)


def radial_basis(
    bragg_lists: np.ndarray | Iterable[np.ndarray],
    preprocess: bool = True,
    dq: float = DQ,
    n_radial: int = N_RADIAL,
    p_max: int = P_MAX,
    min_spots: int = MIN_SPOTS,
    on_invalid: Literal["raise", "nan"] = "raise",
) -> np.ndarray | tuple[np.ndarray, np.ndarray | bool]:
    """Radial-basis feature vectors of one or many Bragg lists (paper eqs. 1–2).

    Parameters
    ----------
    bragg_lists : array_like
        One pattern as a numpy array of shape (n, 3) (qx, qy, I), or many patterns: a sequence
        (list, tuple, generator, 1-D object array) of (n_i, 3) arrays, or an (N, n, 3) array.
        A plain nested Python list is read as a sequence of patterns, never as one pattern.
    preprocess : bool
        True (default): apply
        :func:`~uedsteer.surrogates.crystal.bragg_lists.preprocess_bragg` (reject lists with
        < ``min_spots`` spots, drop the central beam, scale intensities to sum 0.3). False:
        exactly eqs. (1)–(2) on the spots as given (the list must still be non-empty, finite
        and non-negative).
    dq : float
        Radial step Δq in 1/Å (> 0). Default 0.05.
    n_radial : int
        Number of radial bins m = 0 … n_radial − 1 (>= 1). Default 41. Spots with
        ``|q| >= n_radial * dq`` contribute nothing; spots between ``(n_radial − 1) * dq`` and
        ``n_radial * dq`` only to the last bin.
    p_max : int
        Highest angular order (>= 0). Default 12.
    min_spots : int
        Minimum number of spots, central beam included (used only when ``preprocess``).
    on_invalid : {"raise", "nan"}
        "raise" (default): the first invalid pattern raises ``ValueError`` naming its index
        (``bragg_lists[i]``), the problem and the value. "nan": invalid patterns (empty, wrong
        shape, NaN/inf, negative intensity, too few spots, zero diffracted intensity) give a row
        of NaN, and a validity mask is returned as well.

    Returns
    -------
    features : numpy.ndarray
        Shape (2 · n_radial · (p_max + 1),) = (1066,) for one pattern, (N, 1066) for many.
        Magnitudes |τ_{m,p}| first, then arguments arg τ_{m,p} in (−π, π]; m-major inside each
        block (index ``m * (p_max + 1) + p``), see :func:`feature_index`.
    valid : numpy.ndarray or bool
        Only when ``on_invalid="nan"``: a boolean (N,) mask (a plain ``bool`` for one
        pattern), False where the row is NaN.

    Notes
    -----
    The computation is vectorized over all spots of all patterns (concatenated with a pattern
    index and accumulated with ``numpy.bincount``); the only Python loop over patterns converts
    each one to an array. Measured on a shared 2-core machine (numpy 2.4, one thread): about
    30,000 patterns/s for 10,000 patterns of Poisson(50) spots with preprocessing (0.33 s),
    about 32,000 patterns/s without, when the machine was otherwise idle; 10,000–15,000
    patterns/s while other jobs loaded it. The (N, 1066) float64 output (85 MB for 10,000 patterns)
    and the 2 × 13 phasor terms per spot dominate; temporaries are bounded by processing
    65,536 spots at a time.

    Examples
    --------
    >>> spots = np.array([[0.0, 0.0, 10.0], [0.3, 0.0, 1.0], [-0.3, 0.0, 1.0],
    ...                   [0.0, 0.3, 1.0], [0.0, -0.3, 1.0]])
    >>> radial_basis(spots).shape
    (1066,)
    """
    if on_invalid not in _ON_INVALID:
        raise ValueError(f"on_invalid={on_invalid!r} is not allowed; use 'raise' or 'nan'")
    if not (isinstance(dq, int | float | np.number) and np.isfinite(dq) and dq > 0):
        raise ValueError(f"dq={dq!r} is not allowed; use a finite step > 0 in 1/Å")
    for label, value, lowest in (("n_radial", n_radial, 1), ("p_max", p_max, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lowest:
            raise ValueError(f"{label}={value!r} is not allowed; use an integer >= {lowest}")
    if preprocess:
        min_spots = _check_min_spots(min_spots)

    patterns, single = _as_patterns(bragg_lists)
    n_patterns = len(patterns)
    n_features = 2 * n_radial * (p_max + 1)

    # Per-pattern conversion (the only Python loop), then vectorized checks on all spots.
    shape_ok = np.zeros(n_patterns, dtype=bool)
    lengths = np.zeros(n_patterns, dtype=np.int64)
    arrays = []
    for i, pattern in enumerate(patterns):
        try:
            arr = np.asarray(pattern, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.ndim == 2 and arr.shape[1] == 3:
            shape_ok[i] = True
            lengths[i] = arr.shape[0]
            arrays.append(arr)
    data = np.concatenate(arrays) if arrays else np.empty((0, 3))
    pid = np.repeat(np.flatnonzero(shape_ok), lengths[shape_ok])

    good_spot = np.isfinite(data).all(axis=1) & (data[:, 2] >= 0)
    bad_spots = np.bincount(pid, weights=~good_spot, minlength=n_patterns) > 0
    valid = shape_ok & (lengths > 0) & ~bad_spots
    if preprocess:
        valid &= lengths >= min_spots

    keep = valid[pid]
    data, pid = data[keep], pid[keep]
    if preprocess and data.shape[0]:
        starts, seg = _segment_starts(pid)
        inten = data[:, 2]
        is_max = inten == np.maximum.reduceat(inten, starts)[seg]
        candidates = np.flatnonzero(is_max)
        first = np.ones(candidates.shape, dtype=bool)
        first[1:] = seg[candidates[1:]] != seg[candidates[:-1]]
        drop = np.zeros(data.shape[0], dtype=bool)
        drop[candidates[first]] = True
        data, pid, seg = data[~drop], pid[~drop], seg[~drop]
        totals = np.bincount(seg, weights=data[:, 2], minlength=starts.size)
        zero = totals <= 0
        if zero.any():
            valid[pid[zero[seg]]] = False
            keep = ~zero[seg]
            data, pid, seg = data[keep], pid[keep], seg[keep]
        data[:, 2] *= INTENSITY_SUM / totals[seg]  # data is a fresh copy (boolean indexing)

    if on_invalid == "raise" and not valid.all():
        i = int(np.flatnonzero(~valid)[0])
        name = "bragg_lists" if single else f"bragg_lists[{i}]"
        if preprocess:
            preprocess_bragg(patterns[i], min_spots=min_spots, name=name)
        else:
            validate_bragg(patterns[i], name=name)
        raise ValueError(f"{name} is not a valid Bragg list")  # pragma: no cover - safety net

    rows = np.flatnonzero(valid)
    computed = np.empty((rows.size, n_features))
    if rows.size:
        compact = np.searchsorted(rows, pid)
        tau = _tau(data, compact, rows.size, float(dq), int(n_radial), int(p_max))
        tau = tau.reshape(rows.size, -1)
        half = n_features // 2
        np.abs(tau, out=computed[:, :half])
        np.arctan2(tau.imag, tau.real, out=computed[:, half:])  # == numpy.angle(tau)
    if rows.size == n_patterns:
        features = computed
    else:
        features = np.full((n_patterns, n_features), np.nan)
        features[rows] = computed

    if single:
        return (features[0], bool(valid[0])) if on_invalid == "nan" else features[0]
    return (features, valid) if on_invalid == "nan" else features
