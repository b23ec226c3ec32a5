"""A UED frame before its peaks are looked for: beam-stop mask, smoothing, background, noise.

Steps 1–3 of :func:`~uedsteer.surrogates.crystal.peaks.find_bragg_peaks` (its module docstring
describes the whole algorithm): the mask and the geometry that depend only on the grid, the beam
stop and the options (cached), the beam-stop radius read from a frame, the masked Gaussian
smoothing, the background under the spots and the robust per-pixel noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from uedsteer.sim_devices.physics.grid import ReciprocalGrid

BACKGROUNDS = ("opening", "median", "none")
"""The background subtractions of the peak finder (its ``background`` option)."""

_EDGE_PX = 2  # maxima this close to the frame edge are truncated spots: skipped


@lru_cache(maxsize=8)
def _q_map(n: int, dq: float) -> np.ndarray:
    q = ReciprocalGrid(n, dq).q
    q.setflags(write=False)
    return q


@dataclass(frozen=True)
class _Geometry:
    """Everything that depends only on the grid, the beam stop and the options (cached)."""

    mask: np.ndarray  # True outside the beam stop
    smooth_norm: np.ndarray | None  # Gaussian-smoothed mask (normalized convolution)
    fill_index: tuple[np.ndarray, np.ndarray] | None  # nearest unmasked pixel of each pixel
    inner: np.ndarray  # mask eroded by 2 px (noise estimate away from the stop edge)
    allowed: np.ndarray  # where a maximum may lie


@lru_cache(maxsize=8)
def _geometry(n: int, dq: float, r_stop: float, sigma: float, r_min: float) -> _Geometry:
    q = _q_map(n, dq)
    mask = q > r_stop
    norm = None
    if sigma > 0:
        norm = ndimage.gaussian_filter(mask.astype(np.float64), sigma, mode="constant")
    fill = None
    if not mask.all():
        idx = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
        fill = (idx[0], idx[1])
    inner = ndimage.binary_erosion(mask, iterations=2)
    if not inner.any():
        inner = mask
    allowed = q > r_min
    allowed[:_EDGE_PX] = allowed[-_EDGE_PX:] = False
    allowed[:, :_EDGE_PX] = allowed[:, -_EDGE_PX:] = False
    for a in (mask, inner, allowed) + ((norm,) if norm is not None else ()):
        a.setflags(write=False)
    return _Geometry(mask, norm, fill, inner, allowed)


def _infer_beam_stop(frame: np.ndarray, grid: ReciprocalGrid) -> float:
    """Radius of the all-zero disk around q = 0 (0 when the centre pixel is non-zero)."""
    half = grid.n // 2
    if frame[half, half] != 0:
        return 0.0
    q = _q_map(grid.n, float(grid.dq))
    # largest radius r such that every pixel with |q| <= r reads exactly 0
    return float(np.nextafter(q[frame != 0].min(), 0.0))


def _masked_smooth(frame: np.ndarray, geo: _Geometry, sigma: float) -> np.ndarray:
    if geo.smooth_norm is None:
        return frame * geo.mask
    num = ndimage.gaussian_filter(frame * geo.mask, sigma, mode="constant")
    out = np.zeros_like(frame)
    ok = geo.smooth_norm > 1e-3
    out[ok] = num[ok] / geo.smooth_norm[ok]
    return out


def _background(smooth: np.ndarray, geo: _Geometry, kind: str, size: int) -> np.ndarray:
    if kind == "none":
        return np.zeros_like(smooth)
    # masked pixels take their nearest unmasked neighbour's value, so that the stop's zeros
    # do not pull the background down around it
    filled = smooth if geo.fill_index is None else smooth[geo.fill_index]
    if kind == "opening":
        bg = ndimage.grey_opening(filled, size=(size, size), mode="nearest")
    else:
        bg = ndimage.median_filter(filled, size=size, mode="nearest")
    return ndimage.gaussian_filter(bg, size / 4.0, mode="nearest")


def _pixel_noise(frame: np.ndarray, geo: _Geometry) -> float:
    """Robust per-pixel noise σ: MAD of the residual to a 3 × 3 mean (white noise: ×√(9/8))."""
    resid = frame - ndimage.uniform_filter(frame, 3, mode="nearest")
    r = resid[geo.inner]
    mad = np.median(np.abs(r - np.median(r)))
    return float(1.4826 * mad * np.sqrt(9.0 / 8.0))
