"""Pictures of frames a person can look at (matplotlib, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .physics import ReciprocalGrid, difference_channels


def difference_rgb(channels: np.ndarray) -> np.ndarray:
    """(2, n, n) difference channels → (n, n, 3) RGB: gain red, loss blue, black = no change."""
    red, blue = channels
    return np.clip(np.stack([red, np.zeros_like(red), blue], axis=-1) ** 0.5, 0.0, 1.0)


def frame_montage(
    frames: np.ndarray,
    titles: Sequence[str],
    reference: np.ndarray,
    out: str | Path,
    grid: ReciprocalGrid | None = None,
) -> Path:
    """Write a PNG with each raw frame (log scale) above its difference image.

    Parameters
    ----------
    frames : numpy.ndarray
        (B, n, n) raw frames.
    titles : sequence of str
        One caption per frame.
    reference : numpy.ndarray
        (k ≥ 3, n, n) pristine 2H frames for the difference channels.
    out : str or Path
        PNG path (parent folders are created).
    grid : ReciprocalGrid, optional
        For the axis extent in 1/Å.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = grid or ReciprocalGrid(frames.shape[-1])
    ext = [-grid.q_max, grid.q_max, -grid.q_max, grid.q_max]
    diffs = difference_channels(frames, reference)
    cols = len(frames)
    fig, axes = plt.subplots(2, cols, figsize=(2.3 * cols, 5.0), squeeze=False)
    for k in range(cols):
        raw = np.log1p(np.clip(frames[k], 0, None))
        axes[0, k].imshow(
            raw, origin="lower", extent=ext, cmap="inferno", vmax=np.percentile(raw, 99.9)
        )
        axes[0, k].set_title(titles[k], fontsize=9)
        axes[1, k].imshow(difference_rgb(diffs[k]), origin="lower", extent=ext)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel(f"raw frame (log)\nq ±{grid.q_max:.1f} 1/Å", fontsize=8)
    axes[1, 0].set_ylabel("difference vs 2H\nred gain, blue loss", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
