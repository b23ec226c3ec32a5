"""Bragg lists as the crystal models take them: checks, detector window, orientation, preprocessing.

A Bragg list is a float array of shape (n, 3) with columns (qx, qy, I): the spot position in
1/Å (without the 2π factor) and its integrated intensity. The central (undiffracted) beam is
normally included: at (0, 0) in simulated lists, otherwise usually the brightest spot.

Preprocessing (the authors' public code)
----------------------------------------
:func:`preprocess_bragg` rejects lists with fewer than ``min_spots`` spots, drops the central
beam (the spot at the origin, or the brightest spot when none is there) and scales the
remaining intensities to sum to 0.3. The features of a prepared list are computed in
:mod:`~uedsteer.surrogates.crystal.features` (radial basis) and
:mod:`~uedsteer.surrogates.crystal.zone` (zone lattice).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

MIN_SPOTS = 5
"""Default minimum number of spots of a Bragg list, central beam included."""

INTENSITY_SUM = 0.3
"""Sum of the diffracted intensities after preprocessing (authors' public code)."""

#: A spot closer than this to the origin (1/Å) is the central beam.
CENTRAL_TOLERANCE = 0.05  # the radial basis's step DQ


def validate_bragg(bragg: np.ndarray, name: str = "bragg") -> np.ndarray:
    """Check one Bragg list and return it as a C-contiguous float64 (n, 3) array.

    Parameters
    ----------
    bragg : array_like, shape (n, 3)
        Columns (qx, qy, I); q in 1/Å without 2π.
    name : str
        How the argument is called in error messages (e.g. ``"bragg_lists[7]"``).

    Returns
    -------
    numpy.ndarray
        float64 array of shape (n, 3), n ≥ 1. It may share memory with ``bragg``.

    Raises
    ------
    ValueError
        If ``bragg`` is not numeric, not of shape (n, 3), empty, holds NaN or infinite values,
        or has a negative intensity. The message names ``name``, the offending row and value.
    """
    try:
        arr = np.asarray(bragg, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric (n, 3) array of (qx, qy, I); it could not be "
            f"converted to floats ({exc})"
        ) from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty (0 spots); a Bragg list needs at least one spot")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape (n, 3) with columns (qx, qy, I); got shape {arr.shape}"
        )
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{name} row {row} holds a non-finite value {arr[row].tolist()}; qx, qy and I must "
            "all be finite"
        )
    negative = arr[:, 2] < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"{name} row {row} has negative intensity I={arr[row, 2]:g}; intensities must be >= 0"
        )
    return np.ascontiguousarray(arr)


def _check_min_spots(min_spots: int) -> int:
    if isinstance(min_spots, bool) or not isinstance(min_spots, int | np.integer) or min_spots < 2:
        raise ValueError(
            f"min_spots={min_spots!r} is not allowed; use an integer >= 2 (the central beam plus "
            "at least one diffracted spot)"
        )
    return int(min_spots)


def crop_bragg(bragg: np.ndarray, q_min: float = 0.0, q_max: float = np.inf) -> np.ndarray:
    """The spots a detector with a beam stop and a finite q range would record.

    Keeps the central beam (|q| < ``CENTRAL_TOLERANCE``) and the spots with
    ``q_min <= |q| <= q_max``: e.g. ``(0.16, 1.3)`` for the UED detector of this project
    (beam stop 0.15 1/Å, frame edge 1.3 1/Å), so that a model trained on cropped lists sees
    what :func:`uedsteer.surrogates.crystal.peaks.find_bragg_peaks` can find.

    Parameters
    ----------
    bragg : array_like, shape (n, 3)
        Columns (qx, qy, I).
    q_min, q_max : float
        Radial window in 1/Å (no 2π); ``0 <= q_min < q_max``.
    """
    if not (0.0 <= q_min < q_max):
        raise ValueError(f"q_min={q_min}, q_max={q_max}: need 0 <= q_min < q_max (1/Å)")
    arr = np.asarray(bragg, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"bragg has shape {arr.shape}; expected (n, 3)")
    q = np.hypot(arr[:, 0], arr[:, 1])
    return arr[(q < CENTRAL_TOLERANCE) | ((q >= q_min) & (q <= q_max))]


def orient_bragg(bragg: np.ndarray, tol: float = 0.02) -> np.ndarray:
    """Rotate a Bragg list in plane so its shortest diffracted spot lies along +q_x.

    The arguments arg τ_{m,p} depend on the pattern's in-plane rotation. Simulated zone-axis
    lists (:func:`~uedsteer.sim_devices.physics.bragg.zone_axis_rotation`) put the shortest
    reciprocal vector along +x; a measured list (a UED frame's peaks, a 4D-STEM probe
    position) has whatever rotation the sample had. Rotating every list the same way makes the
    phases comparable. Among spots within ``tol`` (relative) of the shortest |q|, the brightest
    is taken; the central beam (|q| < ``CENTRAL_TOLERANCE``) is ignored and stays at the origin.
    Magnitudes |τ| do not change.

    Parameters
    ----------
    bragg : array_like, shape (n, 3)
        Columns (qx, qy, I).
    tol : float
        Relative tolerance on |q| for "equally short" spots.

    Returns
    -------
    numpy.ndarray
        A rotated copy (the list itself when it has no diffracted spot).
    """
    arr = np.array(bragg, dtype=np.float64)
    q = np.hypot(arr[:, 0], arr[:, 1])
    off = q >= CENTRAL_TOLERANCE
    if not off.any():
        return arr
    q0 = q[off].min()
    near = np.flatnonzero(off & (q <= q0 * (1 + tol)))
    ref = near[np.argmax(arr[near, 2])]
    phi = np.arctan2(arr[ref, 1], arr[ref, 0])
    c, s_ = np.cos(-phi), np.sin(-phi)
    x, y = arr[:, 0].copy(), arr[:, 1].copy()
    arr[:, 0] = c * x - s_ * y
    arr[:, 1] = s_ * x + c * y
    return arr


def prepare_bragg(
    bragg_lists: Iterable[np.ndarray],
    q_range: tuple[float, float] | None = None,
    orient: bool = True,
) -> list[np.ndarray]:
    """Crop each list to a detector window and orient it, as a predictor does before featurizing.

    Lists that are malformed (wrong shape, non-finite values) are passed through unchanged so
    that :func:`~uedsteer.surrogates.crystal.features.radial_basis` flags them with its usual
    message.

    Parameters
    ----------
    bragg_lists : iterable of (n, 3) arrays
    q_range : (float, float), optional
        |q| window of :func:`crop_bragg`; None keeps every spot.
    orient : bool
        Rotate each list with :func:`orient_bragg`.
    """
    out = []
    for b in bragg_lists:
        arr = np.asarray(b, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1:] != (3,) or not np.isfinite(arr).all():
            out.append(arr)
            continue
        if q_range is not None:
            arr = crop_bragg(arr, *q_range)
        out.append(orient_bragg(arr) if orient else arr)
    return out


def jitter_positions(
    bragg_lists: Iterable[np.ndarray], rms: float | tuple[float, float], seed: int = 0
) -> list[np.ndarray]:
    """Bragg lists whose spot positions carry a measurement's error.

    Simulated lists place every spot exactly on the reciprocal lattice; a measured spot's
    centroid is off by some thousandths of 1/Å. A model trained on exact lists learns
    relations that hold only to float precision (a cell's angle of exactly 90°, ratios of
    exactly √2) and reads measured lists worse; one trained on these lists does not.

    Parameters
    ----------
    bragg_lists : iterable of (n, 3) arrays
        Spots (qx, qy, I) in 1/Å. The central beam (within ``CENTRAL_TOLERANCE`` of the
        origin) is the origin of the measurement and keeps its place.
    rms : float or (float, float)
        Gaussian error per coordinate (1/Å, ≥ 0): one value for every list, or a range from
        which each list draws its own uniformly (exact to poorly measured lists).
    seed : int
        Seed of the errors.

    Returns
    -------
    list of (n, 3) float64 arrays
    """
    low, high = (rms, rms) if np.isscalar(rms) else rms
    if not 0.0 <= low <= high or not np.isfinite(high):
        raise ValueError(
            f"rms={rms!r} must be a value or a (low, high) range with 0 <= low <= high (1/Å)"
        )
    rng = np.random.default_rng(seed)
    out = []
    for b in bragg_lists:
        arr = np.array(b, dtype=np.float64)
        moved = np.hypot(arr[:, 0], arr[:, 1]) > CENTRAL_TOLERANCE
        arr[moved, :2] += rng.uniform(low, high) * rng.standard_normal((int(moved.sum()), 2))
        out.append(arr)
    return out


def preprocess_bragg(
    bragg: np.ndarray, min_spots: int = MIN_SPOTS, name: str = "bragg"
) -> np.ndarray:
    """Preprocess one Bragg list as the authors' public code does.

    1. Reject the list if it has fewer than ``min_spots`` spots. The count is taken on the list
       as given, **before** the central beam is dropped: it is the number of spots the peak
       finder returned, as in the paper, which removes "Bragg lists containing fewer than 5
       diffraction spots" before featurization. With the default 5 a kept pattern therefore
       has at least 4 diffracted spots.
    2. Drop the central beam: the spot at the origin (|q| < ``CENTRAL_TOLERANCE`` = Δq) when
       the list has one, otherwise the brightest spot (the authors' rule; on ties the first).
       Looking at the origin first matters for thick crystals, where multiple scattering can
       make a diffracted beam brighter than the transmitted one (Bloch-wave lists from
       :mod:`uedsteer.sim_devices.physics.bragg` always hold the central beam at (0, 0)).
    3. Scale the remaining intensities so that they sum to 0.3.

    Parameters
    ----------
    bragg : array_like, shape (n, 3)
        Columns (qx, qy, I), central beam included.
    min_spots : int
        Minimum number of spots (central beam included), at least 2. Default 5.
    name : str
        How the argument is called in error messages.

    Returns
    -------
    numpy.ndarray
        New float64 array of shape (n − 1, 3).

    Raises
    ------
    ValueError
        For an invalid list (see :func:`validate_bragg`), fewer than ``min_spots`` spots, or
        diffracted spots whose intensities sum to 0 (they cannot be scaled to 0.3).
    """
    min_spots = _check_min_spots(min_spots)
    arr = validate_bragg(bragg, name)
    n = arr.shape[0]
    if n < min_spots:
        raise ValueError(
            f"{name} has {n} spots (central beam included); at least min_spots={min_spots} "
            "are needed"
        )
    radius = np.hypot(arr[:, 0], arr[:, 1])
    nearest = int(np.argmin(radius))
    central = nearest if radius[nearest] < CENTRAL_TOLERANCE else int(np.argmax(arr[:, 2]))
    out = np.delete(arr, central, axis=0)
    total = float(out[:, 2].sum())
    if not total > 0:
        raise ValueError(
            f"{name}: the {n - 1} diffracted spots (central beam removed) have total intensity "
            f"0; they cannot be scaled to sum {INTENSITY_SUM}"
        )
    out[:, 2] *= INTENSITY_SUM / total
    return out


def _as_patterns(bragg_lists: object) -> tuple[list, bool]:
    """Split the input into a list of patterns; True when it was a single (n, 3) array."""
    if isinstance(bragg_lists, np.ndarray) and bragg_lists.dtype != object:
        if bragg_lists.ndim == 2:
            return [bragg_lists], True
        if bragg_lists.ndim == 3:
            return list(bragg_lists), False
        raise ValueError(
            "bragg_lists must be one (n, 3) array, an (N, n, 3) array or a sequence of (n, 3) "
            f"arrays; got an array of shape {bragg_lists.shape}"
        )
    if isinstance(bragg_lists, str | bytes | dict) or not isinstance(bragg_lists, Iterable):
        raise ValueError(
            "bragg_lists must be one (n, 3) array or a sequence of (n, 3) arrays; got "
            f"{type(bragg_lists).__name__}"
        )
    return list(bragg_lists), False
