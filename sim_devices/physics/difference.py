"""Two-channel difference images, the CNN input of the ML-UED seed.

Subtract the mean of pristine 2H reference patterns; the positive part divided by its maximum
is channel 0 ("red", intensity gained), the negative part divided by its minimum is channel 1
("blue", intensity lost). Both channels are in [0, 1].
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

MIN_REFERENCES = 3
RELATIVE_TOLERANCE = 1e-6  # float32 frames carry ~6e-8 relative rounding


def reference_pattern(references: ArrayLike, normalize: bool = True) -> np.ndarray:
    """Mean of ≥ 3 pristine reference frames, shape (n, n).

    Parameters
    ----------
    references : array_like
        (k, n, n) stack with k ≥ 3, or one (n, n) pattern that is already such a mean.
    normalize : bool
        Normalize every frame to unit total intensity before averaging.
    """
    ref = np.asarray(references, dtype=np.float64)
    if ref.ndim == 3:
        if ref.shape[0] < MIN_REFERENCES:
            raise ValueError(
                f"reference has {ref.shape[0]} patterns; at least {MIN_REFERENCES} pristine "
                "2H patterns are needed for a stable mean"
            )
        if normalize:
            ref = _normalize(ref)
        ref = ref.mean(axis=0)
    elif ref.ndim != 2:
        raise ValueError(f"reference must be (n, n) or (k, n, n); got shape {ref.shape}")
    elif normalize:
        ref = _normalize(ref)
    if not np.all(np.isfinite(ref)):
        raise ValueError("reference holds NaN or infinite pixels")
    return ref


def _normalize(frames: np.ndarray) -> np.ndarray:
    totals = frames.sum(axis=(-2, -1), keepdims=True)
    return np.divide(frames, totals, out=np.zeros_like(frames), where=totals > 0)


def difference_channels(
    frame: ArrayLike, reference: ArrayLike, normalize: bool = True
) -> np.ndarray:
    """Positive/negative difference channels of one frame or a batch.

    Parameters
    ----------
    frame : array_like
        (n, n) frame or (B, n, n) batch.
    reference : array_like
        (n, n) mean reference or (k ≥ 3, n, n) pristine 2H frames (averaged here).
    normalize : bool
        Divide frames and references by their total intensity first, so the difference shows
        structural change rather than beam-intensity drift (``False``: raw subtraction as in
        the seed).

    Returns
    -------
    numpy.ndarray
        float32, (2, n, n) for one frame or (B, 2, n, n) for a batch; channel 0 = gain,
        channel 1 = loss, each scaled to [0, 1].
    """
    frames = np.asarray(frame, dtype=np.float64)
    single = frames.ndim == 2
    if single:
        frames = frames[None]
    if frames.ndim != 3:
        raise ValueError(f"frame must be (n, n) or (B, n, n); got shape {np.shape(frame)}")
    ref = reference_pattern(reference, normalize=normalize)
    if ref.shape != frames.shape[1:]:
        raise ValueError(f"reference shape {ref.shape} differs from frame shape {frames.shape[1:]}")
    if not np.all(np.isfinite(frames)):
        raise ValueError("frame holds NaN or infinite pixels")
    if normalize:
        frames = _normalize(frames)
    diff = frames - ref
    # Rounding-level differences are no change: without this, max-scaling blows them up to 1.
    diff[np.abs(diff) <= RELATIVE_TOLERANCE * np.abs(ref).max()] = 0.0
    pos = np.clip(diff, 0.0, None)
    neg = np.clip(diff, None, 0.0)
    pmax = pos.max(axis=(1, 2), keepdims=True)
    nmin = neg.min(axis=(1, 2), keepdims=True)
    red = np.divide(pos, pmax, out=np.zeros_like(pos), where=pmax > 0)
    blue = np.divide(neg, nmin, out=np.zeros_like(neg), where=nmin < 0)
    out = np.stack([red, blue], axis=1).astype(np.float32)
    return out[0] if single else out
