"""Bragg-peak finding: a raw UED frame → a Bragg list ``(qx, qy, I)``.

The random-forest crystal predictor (:mod:`uedsteer.surrogates.crystal`) works on Bragg lists,
the form its training patterns come in (one row per reflection: reciprocal position in 1/Å
without 2π, and intensity). A UED detector frame is an image: blurred spots (point spread and
space charge, σ ≈ 4–5 px on the seed grid), shot and readout noise, a structured background,
and a beam stop that hides the central beam. :func:`find_bragg_peaks` turns one into the other.

Algorithm (numpy + :mod:`scipy.ndimage` only):

1. **Mask.** Pixels with |q| ≤ ``beam_stop_radius`` are ignored. By default the radius is read
   from the frame: the simulated detector (and any masked frame) writes exact zeros there.
2. **Smooth.** Masked Gaussian smoothing (σ = ``smooth_sigma_px``, normalized convolution so
   that the beam-stop edge does not pull the spots near it down): a matched filter for the
   blurred spots that averages the per-pixel noise away.
3. **Background.** ``"opening"`` (default): grey opening of the smoothed frame with a square
   of ``background_size_px`` (larger than a spot, smaller than the spot spacing), then a
   Gaussian smoothing of σ = size/4; it follows the diffuse background (thermal and Laue
   diffuse scattering, the seed's structured noise) under the spots. ``"median"``: a median
   filter of the same size (slower, similar result). ``"none"``: no subtraction, for frames
   that are already background-free.
4. **Detect.** Local maxima (7 × 7 px) of the map smoothed − background that pass three cuts:
   at least ``threshold`` × the brightest maximum, ``min_snr`` × the noise of the map (robust
   estimate from the frame's pixel-to-pixel scatter) and ``min_contrast`` × the background
   under them. The last one rejects the speckle of an amorphous or molten sample, whose blurred
   grains barely rise above the diffuse halo they sit on (peak/background ≤ 0.6 on simulated
   ``degraded`` frames, ≥ 1 for 99 % of real reflections). Then greedy non-maximum
   suppression, brightest first: no two peaks closer than ``min_distance_px``.
5. **Refine.** Sub-pixel position by a three-point Gaussian (log-parabola) fit along each
   axis of the background-subtracted smoothed map: exact for a Gaussian spot; q is calibrated
   from the grid (``q = (index − n//2) · dq``).
6. **Integrate.** Intensity = Σ (frame − background) over the pixels within
   ``integration_radius_px`` of the refined centre (unmasked pixels only; rim pixels weighted
   by the share of them inside the disk). Spots with a non-positive integrated intensity are
   dropped.
7. **Central beam.** A row ``(0, 0, central_beam_factor × brightest)`` is put first. The beam
   stop hides the real central beam; the random-forest preprocessing of the crystal predictor
   (after the reference implementation of its seed) drops the *brightest* spot of a list as
   the central beam, so without this row it would drop the strongest real reflection.

Returned rows: the central beam first, then the reflections by decreasing intensity.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from uedsteer.sim_devices.physics.grid import ReciprocalGrid

from .frame_background import (
    BACKGROUNDS,
    _background,
    _geometry,
    _infer_beam_stop,
    _masked_smooth,
    _pixel_noise,
)

__all__ = ["find_bragg_peaks", "frame_to_bragg", "peak_options"]

_NOISE_FLOOR = 1e-12  # relative to the frame's largest |value|: a noise-free frame
_RIM_PX = 2.0  # maxima this close outside the beam stop are cut-off tails: skipped
_LOCAL_PX = 3  # half-width of the local-maximum test (≥ _RIM_PX); min_distance_px acts after it
_MAX_CANDIDATES = 2000  # local maxima refined at most (noise-only frames have thousands)


def _check_frame(frame: np.ndarray, grid: ReciprocalGrid, name: str = "frame") -> np.ndarray:
    try:
        f = np.asarray(frame, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array of shape {grid.shape}") from None
    if f.shape != grid.shape:
        raise ValueError(
            f"{name} has shape {f.shape}; the grid (n={grid.n}, dq={grid.dq}) needs {grid.shape}"
        )
    if not np.all(np.isfinite(f)):
        bad = int(np.size(f) - np.isfinite(f).sum())
        raise ValueError(f"{name} has {bad} NaN or infinite pixels; all pixels must be finite")
    if not np.any(f):
        raise ValueError(f"{name} is all zero: there is nothing to find")
    return f


def _refine(d: np.ndarray, iy: int, ix: int) -> tuple[float, float]:
    """Sub-pixel offsets (dy, dx) from a three-point Gaussian fit along each axis."""
    out = []
    for lo, c, hi in (
        (d[iy - 1, ix], d[iy, ix], d[iy + 1, ix]),
        (d[iy, ix - 1], d[iy, ix], d[iy, ix + 1]),
    ):
        if lo > 0 and c > 0 and hi > 0:
            lo, c, hi = np.log(lo), np.log(c), np.log(hi)
        den = lo - 2.0 * c + hi
        off = 0.5 * (lo - hi) / den if den < 0 else 0.0
        out.append(float(np.clip(off, -0.5, 0.5)))
    return out[0], out[1]


def _number(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} must be a number")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    if not np.isfinite(v):
        raise ValueError(f"{name}={value!r} must be finite")
    return v


def _check_params(
    *,
    min_distance_px: float,
    threshold: float,
    min_snr: float,
    min_contrast: float,
    background: str,
    background_size_px: int,
    smooth_sigma_px: float,
    integration_radius_px: float,
    beam_stop_radius: float | None,
    max_peaks: int,
    central_beam_factor: float,
) -> None:
    if _number("min_distance_px", min_distance_px) < 1:
        raise ValueError(f"min_distance_px={min_distance_px} must be >= 1 pixel")
    if not 0 <= _number("threshold", threshold) < 1:
        raise ValueError(
            f"threshold={threshold} must lie in [0, 1) (a fraction of the brightest peak)"
        )
    if _number("min_snr", min_snr) < 0:
        raise ValueError(f"min_snr={min_snr} must be >= 0")
    if _number("min_contrast", min_contrast) < 0:
        raise ValueError(f"min_contrast={min_contrast} must be >= 0")
    if background not in BACKGROUNDS:
        raise ValueError(f"background={background!r} is not known; allowed: {BACKGROUNDS}")
    size = _number("background_size_px", background_size_px)
    if size != int(size) or size < 3:
        raise ValueError(f"background_size_px={background_size_px!r} must be an integer >= 3")
    if not 0 <= _number("smooth_sigma_px", smooth_sigma_px) <= 20:
        raise ValueError(f"smooth_sigma_px={smooth_sigma_px} must lie in [0, 20] pixels")
    if not 1 <= _number("integration_radius_px", integration_radius_px) <= 50:
        raise ValueError(
            f"integration_radius_px={integration_radius_px} must lie in [1, 50] pixels"
        )
    if beam_stop_radius is not None and _number("beam_stop_radius", beam_stop_radius) < 0:
        raise ValueError(f"beam_stop_radius={beam_stop_radius} must be >= 0 (1/Å) or None")
    peaks = _number("max_peaks", max_peaks)
    if peaks != int(peaks) or peaks < 1:
        raise ValueError(f"max_peaks={max_peaks!r} must be a positive integer")
    if _number("central_beam_factor", central_beam_factor) <= 1:
        raise ValueError(
            f"central_beam_factor={central_beam_factor} must be > 1 (the central beam must be "
            "the brightest row)"
        )


def peak_options(**kwargs) -> dict:
    """Check keyword options of :func:`find_bragg_peaks` and return them with the defaults.

    Lets a caller (e.g. :meth:`FrameScorer.attach_crystal_predictor`) reject a bad option when
    it is given rather than at the first frame.

    Raises
    ------
    ValueError
        For an unknown option name or a value out of its range.
    """
    params = inspect.signature(find_bragg_peaks).parameters
    allowed = [k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown peak option(s) {unknown}; allowed: {allowed}")
    opts = {k: kwargs.get(k, params[k].default) for k in allowed}
    _check_params(**opts)
    return opts


def find_bragg_peaks(
    frame: np.ndarray,
    grid: ReciprocalGrid | None = None,
    *,
    min_distance_px: float = 7.0,
    threshold: float = 0.01,
    min_snr: float = 6.0,
    min_contrast: float = 0.5,
    background: str = "opening",
    background_size_px: int = 21,
    smooth_sigma_px: float = 2.0,
    integration_radius_px: float = 5.0,
    beam_stop_radius: float | None = None,
    max_peaks: int = 200,
    central_beam_factor: float = 10.0,
) -> np.ndarray:
    """Bragg list ``(qx, qy, I)`` of a raw UED frame (see the module docstring for the steps).

    Parameters
    ----------
    frame : numpy.ndarray
        (n, n) raw detector frame on ``grid``, indexed ``frame[iy, ix]``.
    grid : ReciprocalGrid, optional
        Calibration of the frame (default: the seed grid, 261 × 261, dq = 0.01 1/Å).
    min_distance_px : float
        Two peaks are at least this far apart (pixels): a maximum closer than this to a
        brighter kept one is dropped. 7 px: more than the radius of a spot's core (σ ≈ 4–5 px),
        well below the closest spot spacing of MoTe2 (1T' (0 k) row: 1/b = 0.16 1/Å = 16 px;
        10 % strain leaves ≥ 14 px). Maxima within this distance of q = 0 are taken for an
        unmasked central beam and replaced by the synthetic row.
    threshold : float
        Minimum peak height in the background-subtracted smoothed map, as a fraction of the
        brightest peak's height, in [0, 1). 1 % keeps the weak high-order reflections of the
        simulated frames; at 0.5 % side maxima of the shape transform and of the noise start
        to come through (about five times as many off-lattice peaks).
    min_snr : float
        Minimum peak height in units of the smoothed map's noise σ (estimated robustly from the
        frame's pixel-to-pixel scatter). Rarely binding on simulated frames (the relative cut
        is higher); it keeps noise out of frames with little or no diffraction.
    min_contrast : float
        Minimum peak height over the background under the peak (0 disables the cut; inactive
        with ``background="none"``). All three cuts apply.
    background : {"opening", "median", "none"}
        Background model (see the module docstring).
    background_size_px : int
        Window of the background filter, pixels (default 21: wider than a blurred spot, whose
        core is ≈ 4σ ≈ 16–18 px across).
    smooth_sigma_px : float
        σ of the matched Gaussian smoothing, pixels (0 disables it).
    integration_radius_px : float
        Radius of the integration disk, pixels (5 px ≈ 1.2σ of the seed spots: most of the
        spot without reaching into the neighbours 16 px away in 1T').
    beam_stop_radius : float, optional
        Beam-stop radius in 1/Å; no peak is reported at or inside it, nor within 2 px outside
        it (a spot cut by the stop, or the streaks of the hidden central beam, rise towards
        the stop and would give false maxima on its rim). Default: read from the frame, as
        the radius of the all-zero disk around q = 0 (0 if the centre is non-zero).
    max_peaks : int
        Keep at most this many reflections (the brightest), not counting the central beam.
    central_beam_factor : float
        Intensity of the synthetic central-beam row in units of the brightest reflection (> 1).
        Its value only has to make the row the unique brightest one (the preprocessing drops
        it before the intensities are normalized); 10 leaves no doubt.

    Returns
    -------
    numpy.ndarray
        (m, 3) float64 rows ``(qx, qy, I)`` with q in 1/Å (no 2π): row 0 is the synthetic
        central beam at (0, 0), then the reflections by decreasing intensity. (0, 3) when no
        reflection passes the cuts.

    Raises
    ------
    ValueError
        If ``frame`` has the wrong shape, contains NaN or infinite pixels or is all zero, or a
        parameter is out of its range.
    """
    grid = ReciprocalGrid() if grid is None else grid
    _check_params(
        min_distance_px=min_distance_px,
        threshold=threshold,
        min_snr=min_snr,
        min_contrast=min_contrast,
        background=background,
        background_size_px=background_size_px,
        smooth_sigma_px=smooth_sigma_px,
        integration_radius_px=integration_radius_px,
        beam_stop_radius=beam_stop_radius,
        max_peaks=max_peaks,
        central_beam_factor=central_beam_factor,
    )
    f = _check_frame(frame, grid)
    n, dq = grid.n, float(grid.dq)
    r_stop = _infer_beam_stop(f, grid) if beam_stop_radius is None else float(beam_stop_radius)
    if r_stop >= np.hypot(grid.q_max, grid.q_max):
        raise ValueError(f"beam_stop_radius={r_stop} hides the whole frame")
    # A maximum must lie _RIM_PX beyond the beam stop: the local-maximum test then compares it
    # with the pixels between it and the stop, so a tail that only rises towards the stop
    # (the shape-transform streaks of the hidden central beam, a spot cut by the stop) is no
    # maximum. Maxima within min_distance_px of q = 0 would be an unmasked central beam,
    # which the synthetic row replaces.
    r_min = max(r_stop + _RIM_PX * dq, float(min_distance_px) * dq)
    sigma = float(smooth_sigma_px)
    geo = _geometry(n, dq, r_stop, sigma, r_min)
    mask, allowed = geo.mask, geo.allowed

    smooth = _masked_smooth(f, geo, sigma)
    bg = _background(smooth, geo, background, int(background_size_px))
    d = (smooth - bg) * mask

    # noise of the smoothed map: pixel noise × ‖Gaussian kernel‖₂ = 1 / (2√π σ)
    sig_pix = _pixel_noise(f, geo)
    gain = 1.0 / (2.0 * np.sqrt(np.pi) * sigma) if sigma > 0 else 1.0
    noise = max(sig_pix * gain, _NOISE_FLOOR * float(np.abs(f).max()))
    # Local maxima in a small square, then greedy suppression (brightest first) within
    # min_distance_px: a maximum filter as wide as min_distance_px would lose a weak spot next
    # to a bright one, whose flank is higher than the weak spot's top (1T' (1 2) beside (1 3)).
    is_max = d == ndimage.maximum_filter(d, size=2 * _LOCAL_PX + 1, mode="nearest")
    cand = is_max & allowed & (d > 0)
    if not cand.any():
        return np.zeros((0, 3))
    heights = d[cand]
    cut = max(threshold * heights.max(), min_snr * noise)
    iy, ix = np.nonzero(cand & (d >= cut) & (d >= min_contrast * bg))
    order = np.argsort(-d[iy, ix], kind="stable")[:_MAX_CANDIDATES]
    iy, ix = iy[order], ix[order]

    half = n // 2
    r_int = float(integration_radius_px)
    rad = int(np.ceil(r_int)) + 1
    dy_off, dx_off = np.mgrid[-rad : rad + 1, -rad : rad + 1]
    raw_minus_bg = (f - bg) * mask
    min_d2 = float(min_distance_px) ** 2
    kept: list[tuple[float, float, float]] = []
    kept_px: list[tuple[float, float]] = []
    for y, x in zip(iy.tolist(), ix.tolist(), strict=True):
        oy, ox = _refine(d, y, x)
        cy, cx = y + oy, x + ox
        # greedy non-maximum suppression (this also removes flat-top ties)
        if any((cy - ky) ** 2 + (cx - kx) ** 2 < min_d2 for ky, kx in kept_px):
            continue
        qx, qy = (cx - half) * dq, (cy - half) * dq
        if np.hypot(qx, qy) <= r_stop:
            continue
        yy, xx = y + dy_off, x + dx_off
        inside = (yy >= 0) & (yy < n) & (xx >= 0) & (xx < n)
        # anti-aliased disk: pixels on the rim count with the share of them inside (to first
        # order), so the sum does not jump as the sub-pixel centre moves
        weight = np.clip(r_int + 0.5 - np.hypot(yy - cy, xx - cx), 0.0, 1.0)
        intensity = float((raw_minus_bg[yy[inside], xx[inside]] * weight[inside]).sum())
        if intensity <= 0:
            continue
        kept.append((qx, qy, intensity))
        kept_px.append((cy, cx))
    if not kept:
        return np.zeros((0, 3))
    peaks = np.array(kept)
    peaks = peaks[np.argsort(-peaks[:, 2], kind="stable")][: int(max_peaks)]
    beam = np.array([[0.0, 0.0, central_beam_factor * peaks[0, 2]]])
    return np.concatenate([beam, peaks])


def frame_to_bragg(
    frames: np.ndarray | Iterable[np.ndarray],
    grid: ReciprocalGrid | None = None,
    **kwargs,
) -> list[np.ndarray]:
    """Bragg lists of a batch of frames (:func:`find_bragg_peaks` on each).

    Parameters
    ----------
    frames : numpy.ndarray
        (B, n, n) raw frames, or one (n, n) frame (treated as B = 1).
    grid : ReciprocalGrid, optional
        Default: the seed grid.
    **kwargs
        Keyword arguments of :func:`find_bragg_peaks`.

    Returns
    -------
    list of numpy.ndarray
        One (m_i, 3) Bragg list per frame.

    Raises
    ------
    ValueError
        If ``frames`` does not have shape (B, n, n) or (n, n), or one frame is bad (NaN or
        infinite pixels, all zero); the message names the frame's index.
    """
    grid = ReciprocalGrid() if grid is None else grid
    try:
        arr = np.asarray(frames, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"frames must be a numeric array of shape (B, {grid.n}, {grid.n})"
        ) from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != grid.shape:
        raise ValueError(f"frames has shape {arr.shape}; expected (B, {grid.n}, {grid.n})")
    out = []
    for i, fr in enumerate(arr):
        try:
            _check_frame(fr, grid, name=f"frames[{i}]")
        except ValueError as err:
            raise ValueError(str(err)) from None
        out.append(find_bragg_peaks(fr, grid, **kwargs))
    return out
