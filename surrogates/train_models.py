"""Project commands that produce the shipped weights: ``uedsteer train cnn|vae|finetune``.

Every command records its data seeds, sizes, hyperparameters, metrics and code version in
``model_card.json`` next to the weights, and writes plots a person looks at.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from uedsteer.sim_devices.classes import CLASSES, INTERPOLATED
from uedsteer.sim_devices.dataset import generate_frames, load_dataset
from uedsteer.sim_devices.physics.difference import reference_pattern

from .cnn import UEDNet
from .preprocess import cnn_input, vae_input
from .training import predict_logits, train_classifier, train_vae
from .vae import ConvVAE, LatentLine

REFERENCE_SEED = 404
REFERENCE_FRAMES = 16
VAE_LABELS = ("ref_2H", INTERPOLATED, "vacancy_2H", "vacancy_1Tp", "degraded")
ON_PATH = ("ref_2H", INTERPOLATED)


def default_weights_dir() -> Path:
    """The package's weights folder in this source tree."""
    return Path(__file__).parent / "weights"


def code_version() -> str:
    """``git describe`` of the source tree, or ``unknown``."""
    try:
        return (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).parent,
                timeout=10,
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def _card_path(out: Path) -> Path:
    return out / "model_card.json"


def _edit_card(out: Path, edit) -> None:
    """Read the model card (empty if none), apply ``edit(card)`` and write it back."""
    path = _card_path(out)
    card = json.loads(path.read_text()) if path.exists() else {}
    edit(card)
    path.write_text(json.dumps(card, indent=1))


def update_card(out: Path, section: str, content: dict) -> None:
    """Replace ``section`` of the model card with ``content``, the code version and the time."""
    stamp = {"code_version": code_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _edit_card(out, lambda card: card.update({section: {**content, **stamp}}))


def note_command(out: Path, section: str, command: str) -> None:
    """Record in ``section`` of the model card the command line that produced it."""
    _edit_card(out, lambda card: card[section].update(command=command))


def training_reference(**overrides) -> np.ndarray:
    """Mean of ``REFERENCE_FRAMES`` pristine 2H frames from the recorded reference seed."""
    frames, _ = generate_frames("ref_2H", REFERENCE_FRAMES, seed=REFERENCE_SEED, **overrides)
    return reference_pattern(frames)


def cnn_arrays(stores: str | Path | Sequence[str | Path], reference: np.ndarray, chunk: int = 400):
    """Pooled difference images and labels of the CNN classes in one or more stores.

    A store may hold only some of the classes (e.g. extra hard examples of two of them).
    """
    stores = [stores] if isinstance(stores, str | Path) else list(stores)
    xs, ys = [], []
    for store in stores:
        present = _store_config(store)["labels"]
        for k, label in enumerate(CLASSES):
            if label not in present:
                continue
            frames, _ = load_dataset(store, [label])
            for i in range(0, len(frames), chunk):
                xs.append(cnn_input(frames[i : i + chunk], reference))
            ys.append(torch.full((len(frames),), k, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(CLASSES)) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted."""
    m = np.zeros((n, n), dtype=int)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def plot_confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    """Confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(matrix / np.maximum(matrix.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if matrix[i, j] > matrix[i].sum() / 2 else "black",
            )
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def class_metrics(matrix: np.ndarray) -> dict:
    """Overall and per-class accuracy from a confusion matrix."""
    per = matrix.diagonal() / np.maximum(matrix.sum(1), 1)
    return {
        "overall_accuracy": float(matrix.trace() / matrix.sum()),
        "worst_class": CLASSES[int(per.argmin())],
        "worst_class_accuracy": float(per.min()),
        "per_class_accuracy": dict(zip(CLASSES, per.round(4).tolist(), strict=True)),
        "confusion": matrix.tolist(),
    }


def train_cnn(
    train: Path,
    val: Path,
    test: Path,
    out: Path,
    seed: int = 0,
    extra: Sequence[Path] = (),
    **kw,
) -> dict:
    """Train CNNSyn (:class:`UEDNet`) and write weights, card and confusion matrix.

    ``extra`` stores (any subset of the classes, e.g. hard examples) join the training set.
    """
    torch.set_num_threads(max(1, torch.get_num_threads()))
    reference = training_reference()
    x_tr, y_tr = cnn_arrays([train, *extra], reference)
    x_va, y_va = cnn_arrays(val, reference)
    torch.manual_seed(seed)
    model = UEDNet()
    log = train_classifier(model, x_tr, y_tr, x_va, y_va, seed=seed, **kw)
    x_te, y_te = cnn_arrays(test, reference)
    pred = predict_logits(model, x_te).argmax(1).numpy()
    matrix = confusion(y_te.numpy(), pred)
    metrics = class_metrics(matrix)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "cnn_syn.pt")
    np.save(out / "reference.npy", reference.astype(np.float32))
    plot_confusion(
        matrix,
        out / "confusion_cnn_syn.png",
        f"CNNSyn on {len(y_te)} test frames: {metrics['overall_accuracy']:.2%}",
    )
    update_card(
        out,
        "cnn_syn",
        {
            "architecture": "UEDNet (pooled 2 x 87 x 87 difference images)",
            "data": {
                "train": str(train),
                "extra_train": [str(e) for e in extra],
                "val": str(val),
                "test": str(test),
                "train_frames": len(y_tr),
                "val_frames": len(y_va),
                "test_frames": len(y_te),
                "seeds": _store_seeds(train, *extra, val, test),
                "reference": {
                    "label": "ref_2H",
                    "frames": REFERENCE_FRAMES,
                    "seed": REFERENCE_SEED,
                },
            },
            "hyperparameters": {"optimizer": "Adam", "seed": seed, **kw},
            "training": log.__dict__,
            "test_metrics": metrics,
        },
    )
    return metrics


def _store_config(store: str | Path) -> dict:
    """The generator configuration a store was written with (labels, seed, …)."""
    import zarr

    return zarr.open_group(str(store), mode="r").attrs["config"]


def _store_seeds(*stores: Path) -> dict:
    return {str(s): _store_config(s)["seed"] for s in stores}


def _vae_arrays(store: Path):
    xs, labels, xfrac = [], [], []
    for label in VAE_LABELS:
        frames, params = load_dataset(store, [label])
        xs.append(vae_input(frames))
        labels += [label] * len(frames)
        xfrac += [p["x"] for p in params]
    return torch.cat(xs), np.array(labels), np.array(xfrac)


@torch.no_grad()
def _encode(vae: ConvVAE, x: torch.Tensor, batch: int = 256):
    mus, errs = [], []
    for i in range(0, len(x), batch):
        mu, _ = vae.encode(x[i : i + batch])
        rec = vae.decode(mu)
        mus.append(mu)
        errs.append(((rec - x[i : i + batch]) ** 2).flatten(1).mean(1))
    return torch.cat(mus).double().numpy(), torch.cat(errs).double().numpy()


def vae_metrics(vae: ConvVAE, line: LatentLine, store: Path) -> dict:
    """Spearman(progress, x) on interpolated frames; ROC AUC of the line distance for
    on-path (2H, interpolated) versus defective/molten frames."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    x, labels, xfrac = _vae_arrays(store)
    z, err = _encode(vae, x)
    s, d = line.project(z)
    interp = labels == INTERPOLATED
    on = np.isin(labels, ON_PATH)
    return {
        "spearman_progress_vs_x": float(spearmanr(s[interp], xfrac[interp]).statistic),
        "auc_line_distance_onpath_vs_damaged": float(roc_auc_score(~on, d)),
        "recon_error_onpath_median": float(np.median(err[on])),
        "recon_error_damaged_median": float(np.median(err[~on])),
        "frames": int(len(labels)),
    }


GUIDE_PATH = 1.5  # latent axis 0: 2H at −1.5 … 1T' at +1.5
GUIDE_DAMAGE = {"vacancy_2H": 2.0, "vacancy_1Tp": 2.0, "degraded": 4.0}  # latent axis 1


def guide_targets(labels: np.ndarray, xfrac: np.ndarray, latent_dim: int) -> torch.Tensor:
    """Guidance targets: axis 0 = path fraction (2x − 1)·1.5, axis 1 = damage (0 on the
    path, 2 for vacancies, 4 for degraded), further axes 0 (nuisance kept small)."""
    m = np.zeros((len(labels), latent_dim), dtype=np.float32)
    m[:, 0] = GUIDE_PATH * (2 * xfrac - 1)
    m[:, 1] = [GUIDE_DAMAGE.get(lab, 0.0) for lab in labels]
    return torch.from_numpy(m)


def train_vae_model(
    train: Path,
    test: Path,
    out: Path,
    seed: int = 0,
    latent_dim: int = 4,
    guide: float = 1.0,
    **kw,
) -> dict:
    """Train the VAE, fit the 2H–1T' line, write weights, card and ``scorer.json``.

    ``guide`` > 0 weights the latent guidance (:func:`guide_targets`) on axes 0 and 1 (and
    0.1 × that on the others); 0 trains the plain, unsupervised VAE of the seed.
    """
    x, labels, xfrac = _vae_arrays(train)
    torch.manual_seed(seed)  # before construction: the initial weights come from the seed too
    vae = ConvVAE(latent_dim)
    weight = torch.full((latent_dim,), 0.1 * guide)
    weight[:2] = guide
    targets = guide_targets(labels, xfrac, latent_dim) if guide > 0 else None
    log = train_vae(vae, x, seed=seed, guide=targets, guide_weight=weight, **kw)
    z, err = _encode(vae, x)
    z2h = z[labels == "ref_2H"]
    z1t = z[(labels == INTERPOLATED) & (xfrac >= 0.95)]
    line = LatentLine.fit(z2h, z1t)
    metrics = vae_metrics(vae, line, test)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(vae.state_dict(), out / "vae.pt")
    meta = {"latent_dim": latent_dim, "line": line.to_dict(), "recon_scale": float(np.median(err))}
    (out / "scorer.json").write_text(json.dumps(meta, indent=1))
    update_card(
        out,
        "vae",
        {
            "architecture": f"ConvVAE latent {latent_dim} on 64 x 64 log frames",
            "data": {
                "train": str(train),
                "test": str(test),
                "labels": list(VAE_LABELS),
                "train_frames": len(labels),
                "seeds": _store_seeds(train, test),
                "line": "mean latent of ref_2H and of interpolated x >= 0.95 (train)",
            },
            "hyperparameters": {
                "optimizer": "Adam",
                "seed": seed,
                "loss": "MSE + beta KL" + (" + guide * |mu - target|^2" if guide > 0 else ""),
                "guide": guide,
                "guide_targets": {"path_axis0": GUIDE_PATH, "damage_axis1": GUIDE_DAMAGE},
                **kw,
            },
            "training": log.__dict__,
            "test_metrics": metrics,
        },
    )
    return metrics
