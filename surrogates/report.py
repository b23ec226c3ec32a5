"""``uedsteer report models``: pictures of the frame scorer's models a person looks at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uedsteer.sim_devices.frame_store import check_store, load_dataset
from uedsteer.sim_devices.materials import INTERPOLATED, Material, get_material

from .preprocess import vae_input
from .scorer import FrameScorer
from .train_models import class_metrics, confusion, plot_confusion

REPORT_LABELS = get_material().labels
"""Labels the test store of :func:`report_models` must hold (the default material's)."""


def _picks(material: Material) -> tuple[str, ...]:
    """Labels shown as reconstructions: reference, path, first vacancy class, last phonon
    class, degraded (those the material has)."""
    m = material
    ends = ([m.reference_class, INTERPOLATED], m.classes_of("vacancy")[:1])
    ends += (m.classes_of("phonon")[-1:], m.classes_of("degraded")[:1])
    return tuple(label for group in ends for label in group)


def report_models(
    data: Path,
    out: Path,
    per_class: int = 150,
    weights: Path | None = None,
    material: str | Material | None = None,
) -> list[Path]:
    """Confusion matrix, latent map with the line between the path's ends (MoTe2: 2H–1T'),
    reconstructions next to inputs.

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
    material : str or Material, optional
        The material of the test store (default MoTe2); the class names come from the
        scorer's model card.

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

    material = get_material(material)
    report_labels = material.labels
    check_store(data / "test.zarr", report_labels)
    scorer = FrameScorer.load(weights, "syn")
    classes = scorer.classes
    out.mkdir(parents=True, exist_ok=True)
    frames, labels = [], []
    for label in report_labels:
        f, _ = load_dataset(data / "test.zarr", [label])
        frames.append(f[:per_class])
        labels += [label] * len(f[:per_class])
    frames = np.concatenate(frames)
    labels = np.array(labels)
    scores = scorer.score(frames)
    paths = []

    cls = np.isin(labels, classes)
    y = np.array([classes.index(s) for s in labels[cls]])
    matrix = confusion(y, scores.predicted_class[cls], len(classes))
    m = class_metrics(matrix, classes)
    p = out / "confusion_matrix.png"
    title = f"CNNSyn, {cls.sum()} test frames: {m['overall_accuracy']:.2%}"
    plot_confusion(matrix, p, title, classes)
    paths.append(p)

    z = scores.latent
    mean = z.mean(0)
    _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
    proj = (z - mean) @ vt[:2].T
    ends = (np.stack([scorer.line.z_2h, scorer.line.z_1tp]) - mean) @ vt[:2].T
    fig, ax = plt.subplots(figsize=(7, 6))
    for label in report_labels:
        sel = labels == label
        ax.scatter(*proj[sel].T, s=6, label=label, alpha=0.6)
    ax.plot(*ends.T, "k-", lw=2)
    start, end = material.phases
    ax.annotate(start, ends[0], fontsize=11, weight="bold")
    ax.annotate(end, ends[1], fontsize=11, weight="bold")
    ax.set_xlabel("latent PC 1")
    ax.set_ylabel("latent PC 2")
    ax.set_title(f"VAE latent space (PCA) and the {start}–{end} line")
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    p = out / "latent_map.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    picks = [np.flatnonzero(labels == lab)[0] for lab in _picks(material)]
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
