"""Frame → network input transforms shared by training and scoring.

* CNN input: the two-channel difference image (``difference_channels``) at full resolution,
  average-pooled 3 × 3 to (2, 87, 87). The detector blur (σ ≥ 3 px) makes the pooling lossless
  for the features that matter and the CNN 9× cheaper.
* VAE input: the raw frame divided by its mean, log1p, divided by ``LOG_SCALE`` and clipped to
  [0, 1] (the decoder ends in a sigmoid), centre 256 × 256 pooled 4 × 4 to (1, 64, 64).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from uedsteer.sim_devices.physics import difference_channels

CNN_POOL = 3
VAE_POOL = 4
VAE_CROP = 256
LOG_SCALE = float(np.log1p(400.0))


def check_frames(frames: np.ndarray, n: int = 261) -> np.ndarray:
    """Return frames as a float32 (B, n, n) array; ``ValueError`` for a wrong shape."""
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (n, n):
        raise ValueError(f"frames must be ({n}, {n}) or (B, {n}, {n}); got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def cnn_input(frames: np.ndarray, reference: np.ndarray) -> torch.Tensor:
    """(B, 261, 261) raw frames → (B, 2, 87, 87) pooled difference channels."""
    chans = difference_channels(check_frames(frames), reference)
    t = torch.from_numpy(chans)
    return F.avg_pool2d(t, CNN_POOL)


def vae_input(frames: np.ndarray) -> torch.Tensor:
    """(B, 261, 261) raw frames → (B, 1, 64, 64) log-scaled, pooled, in [0, 1]."""
    arr = check_frames(frames).astype(np.float64)
    mean = arr.mean(axis=(1, 2), keepdims=True)
    arr = np.divide(arr, mean, out=np.zeros_like(arr), where=mean > 0)
    arr = np.log1p(np.clip(arr, 0.0, None)) / LOG_SCALE
    lo = (arr.shape[-1] - VAE_CROP) // 2
    arr = np.clip(arr[:, lo : lo + VAE_CROP, lo : lo + VAE_CROP], 0.0, 1.0)
    t = torch.from_numpy(arr.astype(np.float32))[:, None]
    return F.avg_pool2d(t, VAE_POOL)
