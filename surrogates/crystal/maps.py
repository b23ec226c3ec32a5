r"""Crystal-system and lattice-constant maps of a 4D-STEM scan (post-processing of the seed).

Gleason et al. (2024) map a 256 × 256 scan of Au nanoparticles as follows (their Fig. 7):

1. drop probe positions whose Bragg list has fewer than 5 spots (central beam included) —
   the carbon support between the particles;
2. predict the crystal system of every remaining pattern with the random forest;
3. median-filter the crystal-system map over a 5 × 5 window;
4. drop pixels whose *difference confidence* — (votes of the top system − votes of the
   second) / trees — is below 0.005 after the filtering;
5. predict the lattice constant of the kept pixels, either with the cubic lattice model for
   every pixel (Fig. 7g–h; the median was 4.03 Å against 4.08 Å for Au) or with the model of
   each pattern's own predicted system (Fig. S8).

:func:`crystal_maps` does exactly this for any predictor with the duck type of
:class:`~uedsteer.surrogates.crystal.predictor.CrystalPredictor`:
``predict(bragg_lists, route_to=None) -> PatternPrediction`` with per-pattern arrays
``crystal_system`` (str), ``difference_weight``, ``lattice`` ((N, 3) a, b, c in Å) and
``valid``. ``route_to`` names the crystal system whose lattice model is used for every
pattern (``None``: each pattern's own predicted system).

Filtering a categorical map
---------------------------
The paper says "median filtered". A median of class *indices* is not meaningful for categories
(the median of cubic = 0 and trigonal = 2 is hexagonal = 1, a class nobody voted for, and the
result depends on an arbitrary ordering of the systems). We use the categorical analogue of the
median instead, the **mode** (majority vote) over the window:

* only predicted pixels vote (support pixels dropped in step 1 do not), and only predicted
  pixels receive a filtered value — the filter corrects classes, it never paints the support;
* the window is ``median_size`` × ``median_size``, centred, clipped at the scan edge;
* ties between systems go to the one with the larger summed difference weight in the window
  (the paper's difference aggregation), then to the first in ``CRYSTAL_SYSTEMS`` order.

Like a median, the mode removes an isolated wrong pixel inside a particle (24 neighbours
outvote it) and keeps edges between two regions in place. The difference-confidence map is
filtered with a true median (NaN-aware, over the predicted pixels of the window), and the
0.005 threshold of step 4 applies to that filtered map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS

from .bragg_lists import MIN_SPOTS

__all__ = [
    "LATTICE_SYSTEMS",
    "CrystalMaps",
    "crystal_maps",
    "mode_filter",
    "nan_median_filter",
]

LATTICE_SYSTEMS = ("per_pixel", *CRYSTAL_SYSTEMS)
"""Allowed ``lattice_system`` values: a crystal system's lattice model for every pixel, or
``"per_pixel"`` (each pattern's own predicted system)."""


@dataclass
class CrystalMaps:
    """Per-pixel crystal maps of a scan, all arrays of shape (ny, nx).

    Attributes
    ----------
    systems : tuple of str
        Class names; index k of ``system`` means ``systems[k]``.
    system : numpy.ndarray of int
        Filtered crystal-system index of the kept pixels, −1 where dropped.
    system_raw : numpy.ndarray of int
        Unfiltered prediction, −1 where no prediction was made (too few spots or invalid).
    difference : numpy.ndarray
        Median-filtered difference confidence, NaN where no prediction was made.
    difference_raw : numpy.ndarray
        The predictor's per-pattern difference weight, NaN where no prediction was made.
    lattice : numpy.ndarray
        Lattice constant a (Å) from the chosen lattice model, NaN where dropped.
    lattice_abc : numpy.ndarray
        (ny, nx, 3) a, b, c (Å) from the chosen lattice model, NaN where dropped.
    n_spots : numpy.ndarray of int
        Spots in each Bragg list (central beam included).
    enough_spots : numpy.ndarray of bool
        ``n_spots >= min_spots``.
    predicted : numpy.ndarray of bool
        Enough spots and a valid prediction.
    confident : numpy.ndarray of bool
        Predicted and filtered difference confidence ≥ ``min_difference``.
    kept : numpy.ndarray of bool
        The pixels of the final maps (= ``confident``; ``system >= 0``).
    median_lattice : float
        Median of ``lattice`` over the kept pixels (NaN when none is kept), Å.
    lattice_system : str
        ``"per_pixel"`` or the crystal system whose lattice model was used.
    min_spots, median_size, min_difference
        The parameters used.
    """

    systems: tuple[str, ...]
    system: np.ndarray
    system_raw: np.ndarray
    difference: np.ndarray
    difference_raw: np.ndarray
    lattice: np.ndarray
    lattice_abc: np.ndarray
    n_spots: np.ndarray
    enough_spots: np.ndarray
    predicted: np.ndarray
    confident: np.ndarray
    kept: np.ndarray
    median_lattice: float
    lattice_system: str
    min_spots: int
    median_size: int
    min_difference: float

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return tuple(self.system.shape)

    def system_names(self) -> np.ndarray:
        """(ny, nx) str map of the filtered systems, "" where dropped."""
        names = np.array([*self.systems, ""], dtype=object)
        return names[np.where(self.system >= 0, self.system, len(self.systems))]

    def counts(self, weighted: bool = False) -> dict[str, float]:
        """Kept pixels per crystal system (the paper's Fig. 7c).

        Parameters
        ----------
        weighted : bool
            Weight each pixel by its filtered difference confidence instead of 1.
        """
        out = {}
        for k, name in enumerate(self.systems):
            m = self.system == k
            out[name] = float(self.difference[m].sum()) if weighted else float(m.sum())
        return out


def _as_grid(bragg_lists: Any) -> np.ndarray:
    """(ny, nx) object array of (n, 3) float arrays, NaN rows (padding) removed."""
    if isinstance(bragg_lists, np.ndarray) and bragg_lists.dtype != object:
        arr = np.asarray(bragg_lists, dtype=float)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(
                "bragg_lists as a numeric array must have shape (ny, nx, max_spots, 3) with "
                f"NaN padding; got {arr.shape}"
            )
        rows = [[arr[iy, ix] for ix in range(arr.shape[1])] for iy in range(arr.shape[0])]
    elif isinstance(bragg_lists, np.ndarray):
        if bragg_lists.ndim != 2:
            raise ValueError(
                f"bragg_lists as an object array must be (ny, nx); got {bragg_lists.shape}"
            )
        rows = bragg_lists.tolist()
    else:
        rows = [list(r) for r in bragg_lists]
    if not rows or not rows[0]:
        raise ValueError("bragg_lists is empty: give an (ny, nx) grid of Bragg lists")
    nx = len(rows[0])
    out = np.empty((len(rows), nx), dtype=object)
    for iy, row in enumerate(rows):
        if len(row) != nx:
            raise ValueError(
                f"bragg_lists row {iy} has {len(row)} patterns but row 0 has {nx}; the grid "
                "must be rectangular"
            )
        for ix, spots in enumerate(row):
            a = np.asarray(spots if spots is not None else np.empty((0, 3)), dtype=float)
            if a.size and (a.ndim != 2 or a.shape[1] != 3):
                raise ValueError(
                    f"bragg_lists[{iy}][{ix}] has shape {a.shape}; a Bragg list is (n, 3) "
                    "(qx, qy, I)"
                )
            a = a.reshape(-1, 3)
            out[iy, ix] = a[~np.isnan(a).any(axis=1)]
    return out


def _check_odd(size: int) -> int:
    if isinstance(size, bool) or int(size) != size or size < 1 or size % 2 == 0:
        raise ValueError(f"median_size={size!r} must be an odd integer >= 1 (1: no filter)")
    return int(size)


def mode_filter(classes: np.ndarray, weights: np.ndarray, n_classes: int, size: int) -> np.ndarray:
    """Majority class over a ``size`` × ``size`` window, for the pixels with a class.

    Parameters
    ----------
    classes : numpy.ndarray of int
        (ny, nx) class indices, −1 = no class (does not vote, gets no value).
    weights : numpy.ndarray
        (ny, nx) tie-break weight of each vote (difference confidence).
    n_classes : int
        Number of classes.
    size : int
        Odd window size.

    Returns
    -------
    numpy.ndarray of int
        Filtered classes, −1 where ``classes`` is −1. Ties: larger summed weight, then the
        lower class index.
    """
    size = _check_odd(size)
    has = classes >= 0
    if size == 1:
        return np.where(has, classes, -1)
    kernel = np.ones((size, size))
    w = np.where(has, np.nan_to_num(weights, nan=0.0), 0.0)
    # count dominates; summed weight (≤ size² · 1 < 100 · size²) only breaks ties
    big = 100.0 * size * size
    score = np.empty((n_classes, *classes.shape))
    for k in range(n_classes):
        ind = classes == k
        count = ndimage.correlate(ind.astype(float), kernel, mode="constant", cval=0.0)
        wsum = ndimage.correlate(np.where(ind, w, 0.0), kernel, mode="constant", cval=0.0)
        score[k] = np.rint(count) * big + wsum
    return np.where(has, np.argmax(score, axis=0), -1)


def nan_median_filter(values: np.ndarray, size: int) -> np.ndarray:
    """NaN-aware median over a centred ``size`` × ``size`` window (clipped at the edges).

    Pixels that are NaN stay NaN; the others get the median of the finite values around them.
    """
    size = _check_odd(size)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if size == 1 or not finite.any():
        out[finite] = values[finite]
        return out
    h = size // 2
    padded = np.pad(values.astype(float), h, mode="constant", constant_values=np.nan)
    windows = sliding_window_view(padded, (size, size))[finite]  # (n_finite, size, size)
    out[finite] = np.nanmedian(windows.reshape(len(windows), -1), axis=1)
    return out


def crystal_maps(
    bragg_lists: Any,
    predictor: Any,
    min_spots: int = MIN_SPOTS,
    median_size: int = 5,
    min_difference: float = 0.005,
    lattice_system: str = "cubic",
) -> CrystalMaps:
    """Crystal-system, difference-confidence and lattice-constant maps of a scan (paper Fig. 7).

    Parameters
    ----------
    bragg_lists : (ny, nx) grid of Bragg lists
        An (ny, nx) object array or nested sequence of (n, 3) arrays ``(qx, qy, I)``, or an
        (ny, nx, max_spots, 3) float array padded with NaN rows (e.g. stacked
        :class:`~uedsteer.sim_devices.stem_devices.BraggDetector` readings).
    predictor : CrystalPredictor or the same duck type
        ``predict(list_of_bragg_lists, route_to=...) -> PatternPrediction``.
    min_spots : int
        Patterns with fewer spots (central beam included) are dropped before prediction.
    median_size : int
        Odd window of the filters (5 in the paper; 1 = no filtering).
    min_difference : float
        Pixels whose filtered difference confidence is below this are dropped (0.005).
    lattice_system : str
        ``"cubic"`` (paper Fig. 7: the cubic lattice model for every pixel), another crystal
        system's name, or ``"per_pixel"`` (the model of each pattern's own, unfiltered,
        predicted system; paper Fig. S8).

    Returns
    -------
    CrystalMaps

    Raises
    ------
    ValueError
        For a malformed grid or parameter, or a prediction whose length does not match.
    """
    if lattice_system not in LATTICE_SYSTEMS:
        raise ValueError(
            f"lattice_system={lattice_system!r} is not allowed; use one of {LATTICE_SYSTEMS}"
        )
    if isinstance(min_spots, bool) or int(min_spots) != min_spots or min_spots < 1:
        raise ValueError(f"min_spots={min_spots!r} must be an integer >= 1")
    median_size = _check_odd(median_size)
    min_difference = float(min_difference)
    if not np.isfinite(min_difference) or min_difference < 0:
        raise ValueError(f"min_difference={min_difference!r} must be a finite number >= 0")

    grid = _as_grid(bragg_lists)
    shape = grid.shape
    systems = tuple(CRYSTAL_SYSTEMS)
    n_spots = np.vectorize(len, otypes=[int])(grid)
    enough = n_spots >= int(min_spots)

    system_raw = np.full(shape, -1, dtype=int)
    diff_raw = np.full(shape, np.nan)
    abc = np.full((*shape, 3), np.nan)
    valid = np.zeros(shape, dtype=bool)
    rows = np.argwhere(enough)
    if len(rows):
        patterns = [grid[iy, ix] for iy, ix in rows]
        route = None if lattice_system == "per_pixel" else lattice_system
        pred = predictor.predict(patterns, route_to=route)
        ok = np.asarray(pred.valid, dtype=bool)
        if ok.shape != (len(patterns),):
            raise ValueError(
                f"predictor returned {ok.shape[0] if ok.ndim else 0} predictions for "
                f"{len(patterns)} patterns"
            )
        lookup = {name: k for k, name in enumerate(systems)}
        idx = np.array([lookup.get(str(s), -1) for s in pred.crystal_system], dtype=int)
        ok &= idx >= 0
        iy, ix = rows[ok, 0], rows[ok, 1]
        valid[iy, ix] = True
        system_raw[iy, ix] = idx[ok]
        diff_raw[iy, ix] = np.asarray(pred.difference_weight, dtype=float)[ok]
        abc[iy, ix] = np.asarray(pred.lattice, dtype=float).reshape(-1, 3)[ok]

    system_f = mode_filter(system_raw, diff_raw, len(systems), median_size)
    diff_f = nan_median_filter(np.where(valid, diff_raw, np.nan), median_size)
    confident = valid & (diff_f >= min_difference)
    system = np.where(confident, system_f, -1)
    abc = np.where(confident[..., None], abc, np.nan)
    lattice = abc[..., 0]
    kept_a = lattice[confident]
    kept_a = kept_a[np.isfinite(kept_a)]
    median_a = float(np.median(kept_a)) if kept_a.size else float("nan")
    return CrystalMaps(
        systems=systems,
        system=system,
        system_raw=system_raw,
        difference=diff_f,
        difference_raw=diff_raw,
        lattice=lattice,
        lattice_abc=abc,
        n_spots=n_spots,
        enough_spots=enough,
        predicted=valid,
        confident=confident,
        kept=confident.copy(),
        median_lattice=median_a,
        lattice_system=lattice_system,
        min_spots=int(min_spots),
        median_size=median_size,
        min_difference=min_difference,
    )
