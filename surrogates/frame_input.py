"""Raw detector frames at the scorer's door: what counts as a frame, why one cannot be scored,
and its signal-to-noise figure.

Input of :meth:`~uedsteer.surrogates.scorer.FrameScorer.score`: one (261, 261) frame, a
(B, 261, 261) batch or a list of frames, of numbers. A frame that cannot be scored is
flagged, never classified (:data:`FLAG_REASONS`); input that is not frames at all (text,
booleans, the wrong number of dimensions, a whole batch of another frame size) raises a
one-line ``ValueError``. The flags: ``nan``, ``inf``, ``zero`` (all pixels 0), ``negative``
(total intensity ≤ 0, or the most negative pixel :data:`NEGATIVE_RATIO` times further from
zero than the brightest: a negated frame), ``saturated`` (> 1 % of pixels at the saturation
value), ``complex`` (complex dtype: detector frames are real intensities) and, in a list of
frames of mixed sizes, ``shape``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

FRAME_SIZE = 261
"""Side of the square frames the networks and the reference are made for."""
SATURATED_SHARE = 0.01
"""A frame with more than this share of pixels at the saturation value is flagged."""
NEGATIVE_RATIO = 2.0
"""A frame whose most negative pixel lies this many times further below zero than its
brightest pixel lies above it is flagged ``negative`` (a negated frame on a pedestal).
Detector noise alone keeps the two within a few tens of percent of each other."""
FLAG_REASONS = {
    "nan": "NaN pixels",
    "inf": "infinite pixels",
    "zero": "all pixels zero",
    "negative": "total intensity <= 0, or negative pixels far stronger than positive ones",
    "saturated": "more than 1 % of the pixels saturated",
    "complex": "complex values",
    "shape": "not a (261, 261) frame",
}
"""What each :attr:`Scores.flags` entry means."""


_ALLOWED_FRAMES = (
    f"allowed: one ({FRAME_SIZE}, {FRAME_SIZE}) frame or a (B, {FRAME_SIZE}, {FRAME_SIZE}) "
    "batch of real numbers"
)


def numeric_array(value: Any, name: str, allowed: str = _ALLOWED_FRAMES) -> np.ndarray:
    """``value`` as an integer, float or complex array; ``ValueError`` naming ``name`` for
    anything else (text, booleans, objects, ragged nesting)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    what = "" if isinstance(value, np.ndarray) else f"a {type(value).__name__}, "
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nesting
        raise ValueError(f"{name} is {what}not an array ({err}); {allowed}") from None
    if arr.dtype.kind not in "iufc":
        raise ValueError(
            f"{name} is {what}an array of shape {arr.shape} and dtype {arr.dtype}; {allowed}"
        )
    return arr


def frame_batch(frames: Any, name: str = "frames") -> tuple[np.ndarray, list[str]]:
    """Frames as a float32 (B, 261, 261) batch, and the flags known before any pixel is read.

    A complex batch or frame is flagged ``complex``; in a list of frames of mixed sizes the
    frames that are not (261, 261) are flagged ``shape``; the pixels of a flagged frame are
    replaced by zeros in the batch (they are never scored).

    Raises
    ------
    ValueError
        For input that is not numbers, not one frame or a batch, or a whole batch of frames of
        another size.
    """
    n = FRAME_SIZE
    if isinstance(frames, Sequence) and not isinstance(frames, str | bytes):
        items = [numeric_array(f, f"{name}[{i}]") for i, f in enumerate(frames)]
        if not items:
            return np.zeros((0, n, n), np.float32), []
        if len({(f.shape, f.dtype.kind == "c") for f in items}) > 1:
            return _mixed_frames(items, name)
        arr = np.stack(items)
    else:
        arr = numeric_array(frames, name)
    if arr.shape == (0,):  # np.array([]): an empty batch
        return np.zeros((0, n, n), np.float32), []
    if arr.ndim not in (2, 3) or arr.shape[-2:] != (n, n):
        raise ValueError(f"{name} has shape {arr.shape} (dtype {arr.dtype}); {_ALLOWED_FRAMES}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.dtype.kind == "c":
        return np.zeros(arr.shape, np.float32), ["complex"] * len(arr)
    return arr.astype(np.float32, copy=False), [""] * len(arr)


def _mixed_frames(items: list[np.ndarray], name: str) -> tuple[np.ndarray, list[str]]:
    """A list of frames of mixed sizes or dtypes: the (261, 261) real ones are kept."""
    n = FRAME_SIZE
    batch = np.zeros((len(items), n, n), np.float32)
    flags = []
    for i, f in enumerate(items):
        if f.ndim != 2:
            raise ValueError(
                f"{name}[{i}] has shape {f.shape} (dtype {f.dtype}); allowed in a list: "
                f"({n}, {n}) frames of real numbers"
            )
        if f.shape != (n, n):
            flags.append("shape")
        elif f.dtype.kind == "c":
            flags.append("complex")
        else:
            batch[i] = f
            flags.append("")
    return batch, flags


def frame_flags(frames: np.ndarray, saturation: float, known: list[str] | None = None) -> list[str]:
    """Why each frame of a (B, n, n) batch cannot be scored (``""``: it can).

    Parameters
    ----------
    frames : numpy.ndarray
        (B, n, n) real frames.
    saturation : float
        Pixel value of a saturated pixel.
    known : list of str, optional
        Flags found before any pixel was read (kept where not empty).

    Returns
    -------
    list of str
        One entry of :data:`FLAG_REASONS` (or ``""``) per frame.
    """
    # Three cheap reductions clear the usual frame (finite positive sum, strongest pixel
    # positive, nothing saturated); only a frame that fails one is looked at pixel by
    # pixel.
    total = frames.sum((1, 2), dtype=np.float64)
    low, high = frames.min((1, 2)), frames.max((1, 2))
    known = known or [""] * len(frames)
    flags = []
    for f, t, lo, hi, flag in zip(frames, total, low, high, known, strict=True):
        if flag:
            flags.append(flag)
        elif np.isfinite(t) and t > 0 and hi > -lo and hi < saturation:
            flags.append("")
        elif np.isnan(f).any():
            flags.append("nan")
        elif np.isinf(f).any():
            flags.append("inf")
        elif not np.any(f):
            flags.append("zero")
        elif t <= 0 or -lo >= NEGATIVE_RATIO * hi:
            # a negated frame (with or without a pedestal), or one whose pedestal
            # subtraction took out the signal
            flags.append("negative")
        elif np.mean(f >= saturation) > SATURATED_SHARE:
            flags.append("saturated")
        else:
            flags.append("")
    return flags


def _box3(f: torch.Tensor) -> torch.Tensor:
    """3 × 3 mean of (B, H, W) with edge pixels averaged over their in-frame neighbours.

    The same as ``avg_pool2d(f, 3, stride=1, padding=1, count_include_pad=False)`` up to
    float rounding, as two separable sums of shifted slices: ~10× faster than the pooling
    kernel at batch 1.
    """
    p = F.pad(f, (1, 1, 1, 1))
    rows = p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]
    box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    h, w = f.shape[-2:]
    count_h = torch.full((h, 1), 3.0, dtype=f.dtype)
    count_w = torch.full((1, w), 3.0, dtype=f.dtype)
    count_h[[0, -1]] = 2.0
    count_w[:, [0, -1]] = 2.0
    return box / (count_h * count_w)


def frame_quality(frames: np.ndarray) -> np.ndarray:
    """Signal-to-noise figure per frame: 1 / (1 + rms(high-pass) / rms(low-pass)) in [0, 1].

    Low-pass = 3 × 3 box filter; the detector's point spread (σ ≥ 3 px) keeps real features
    smooth on that scale, so what the box filter removes is mostly noise.
    """
    f = torch.from_numpy(np.asarray(frames, dtype=np.float32))
    smooth = _box3(f)
    noise = (f - smooth).pow_(2).mean((1, 2)).sqrt_()
    signal = (smooth - smooth.mean((1, 2), keepdim=True)).pow_(2).mean((1, 2)).sqrt_()
    ratio = torch.where(signal > 0, noise / torch.where(signal > 0, signal, 1.0), torch.inf)
    return (1.0 / (1.0 + ratio)).double().numpy()
