"""``uedsteer report models``: pictures of the frame scorer's models a person looks at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uedsteer.sim_devices.classes import CLASSES, INTERPOLATED
from uedsteer.sim_devices.dataset import check_store, load_dataset

from .preprocess import vae_input
from .scorer import FrameScorer
from .train_models import class_metrics, confusion, plot_confusion

REPORT_LABELS = (*CLASSES, INTERPOLATED)
"""Labels the test store of :func:`report_models` must hold."""


def report_models(
    data: Path, out: Path, per_class: int = 150, weights: Path | None = None
) -> list[Path]:
    """Confusion matrix, latent map with the 2H–1T' line, reconstructions next to inputs.

    Parameters
    ----------
    data : Path
        Folder with ``test.zarr`` (from ``uedsteer generate``) holding every label.
    out : Path
        Folder for the PNGs.
    per_class : int
        Test frames per label used for the plots.
    weights : Path, optional
        Folder of the scorer to report (``uedsteer train ... --out``); default: the shipped
        weights. The synthetic-only CNN (``cnn_syn.pt``) is the one shown.

    Raises
    ------
    FileNotFoundError
        If ``data/test.zarr`` does not exist.
    ValueError
        If it is not a finished store holding every label (checked before any work).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_store(data / "test.zarr", REPORT_LABELS)
    scorer = FrameScorer.load(weights, "syn")
    out.mkdir(parents=True, exist_ok=True)
    frames, labels = [], []
    for label in REPORT_LABELS:
        f, _ = load_dataset(data / "test.zarr", [label])
        frames.append(f[:per_class])
        labels += [label] * len(f[:per_class])
    frames = np.concatenate(frames)
    labels = np.array(labels)
    scores = scorer.score(frames)
    paths = []

    cls = np.isin(labels, CLASSES)
    y = np.array([CLASSES.index(s) for s in labels[cls]])
    matrix = confusion(y, scores.predicted_class[cls])
    m = class_metrics(matrix)
    p = out / "confusion_matrix.png"
    plot_confusion(matrix, p, f"CNNSyn, {cls.sum()} test frames: {m['overall_accuracy']:.2%}")
    paths.append(p)

    z = scores.latent
    mean = z.mean(0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    proj = (z - mean) @ vt[:2].T
    ends = (np.stack([scorer.line.z_2h, scorer.line.z_1tp]) - mean) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(7, 6))
    for label in REPORT_LABELS:
        sel = labels == label
        ax.scatter(*proj[sel].T, s=6, label=label, alpha=0.6)
    ax.plot(*ends.T, "k-", lw=2)
    ax.annotate("2H", ends[0], fontsize=11, weight="bold")
    ax.annotate("1T'", ends[1], fontsize=11, weight="bold")
    ax.set_xlabel("latent PC 1")
    ax.set_ylabel("latent PC 2")
    ax.set_title("VAE latent space (PCA) and the 2H–1T' line")
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    p = out / "latent_map.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    picks = [
        np.flatnonzero(labels == lab)[0]
        for lab in ("ref_2H", INTERPOLATED, "vacancy_2H", "phonon_1Tp", "degraded")
    ]
    x = vae_input(frames[picks])
    with torch.no_grad():
        rec = scorer.vae.decode(scorer.vae.encode(x)[0])
    fig, axes = plt.subplots(2, len(picks), figsize=(2.4 * len(picks), 5))
    for k, i in enumerate(picks):
        axes[0, k].imshow(x[k, 0], cmap="inferno", vmin=0, vmax=1)
        axes[0, k].set_title(f"{labels[i]}\nprogress {scores.progress[i]:.2f}", fontsize=8)
        axes[1, k].imshow(rec[k, 0], cmap="inferno", vmin=0, vmax=1)
        axes[1, k].set_title(f"recon err {scores.recon_error[i]:.2f}", fontsize=8)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("reconstruction")
    fig.tight_layout()
    p = out / "reconstructions.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths
