"""Training loops: classifier with early stopping, VAE, and CNNExp fine-tuning."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .vae import ConvVAE, vae_loss


@dataclass
class TrainLog:
    """What happened during training (goes into the model card)."""

    epochs: int = 0
    best_epoch: int = 0
    best_val_accuracy: float = 0.0
    stopped: str = ""
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


def _friedel_flip(xb: torch.Tensor) -> torch.Tensor:
    """Random 180° rotation (I(q) = I(−q)) of half the batch: the seed's 2-fold augmentation."""
    flip = torch.rand(len(xb)) < 0.5
    return torch.where(flip[:, None, None, None], xb.flip(-1, -2), xb)


def _batches(n: int, batch: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for i in range(0, n, batch):
        yield torch.from_numpy(order[i : i + batch])


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Logits of a classifier in eval mode, batched."""
    model.eval()
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of correct predictions."""
    return float((predict_logits(model, x).argmax(1) == y).float().mean())


def _val_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = predict_logits(model, x)
    acc = float((logits.argmax(1) == y).float().mean())
    return acc, float(nn.functional.cross_entropy(logits, y))


def train_classifier(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    lr: float = 1e-3,
    batch: int = 64,
    max_epochs: int = 40,
    target_val_accuracy: float = 0.995,
    patience: int = 2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
) -> TrainLog:
    """Train with Adam and cross-entropy; stop at the target validation accuracy or when it
    has not improved for ``patience`` epochs; the best weights are kept.

    Augmentation: 180° rotation (I(q) = I(−q), Friedel), with probability ½.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max_epochs)
    loss_fn = nn.CrossEntropyLoss()
    log = TrainLog()
    best_state = copy.deepcopy(model.state_dict())
    best_loss = np.inf
    since_best = 0
    t0 = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        model.train()
        total, n = 0.0, 0
        bar = tqdm(
            list(_batches(len(x_train), batch, rng)),
            desc=f"epoch {epoch}",
            disable=not progress,
            leave=False,
        )
        for idx in bar:
            xb, yb = _friedel_flip(x_train[idx]), y_train[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
            n += len(xb)
        sched.step()
        val_acc, val_loss = _val_scores(model, x_val, y_val)
        log.history.append(
            {"epoch": epoch, "train_loss": total / n, "val_accuracy": val_acc, "val_loss": val_loss}
        )
        if progress:
            print(
                f"epoch {epoch:2d}  loss {total / n:.4f}  val acc {val_acc:.4f}"
                f"  val loss {val_loss:.4f}"
            )
        log.epochs = epoch
        better = val_acc > log.best_val_accuracy or (
            val_acc == log.best_val_accuracy and val_loss < best_loss
        )
        if better:
            log.best_val_accuracy, log.best_epoch, best_loss = val_acc, epoch, val_loss
            best_state = copy.deepcopy(model.state_dict())
            since_best = 0
        else:
            since_best += 1
        if val_acc >= target_val_accuracy:
            log.stopped = f"target validation accuracy {target_val_accuracy} reached"
            break
        if since_best >= patience:
            log.stopped = f"no improvement for {patience} epochs"
            break
    else:
        log.stopped = f"max_epochs={max_epochs}"
    model.load_state_dict(best_state)
    model.eval()
    log.seconds = time.perf_counter() - t0
    return log


def train_vae(
    model: ConvVAE,
    x: torch.Tensor,
    *,
    lr: float = 1e-3,
    beta: float = 1.0,
    batch: int = 64,
    epochs: int = 30,
    seed: int = 0,
    progress: bool = True,
    guide: torch.Tensor | None = None,
    guide_weight: torch.Tensor | None = None,
) -> TrainLog:
    """Train the VAE with Adam on MSE + β·KL; returns the per-epoch loss history.

    With ``guide`` (N, d) targets and per-dimension ``guide_weight`` (d,), the loss adds
    Σ_k w_k (μ_k − m_k)²: a guided latent whose axes carry known labels (path fraction,
    damage) while the rest stays a VAE.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log = TrainLog()
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total, n = 0.0, 0
        for idx in tqdm(
            list(_batches(len(x), batch, rng)),
            desc=f"vae epoch {epoch}",
            disable=not progress,
            leave=False,
        ):
            xb = x[idx]
            opt.zero_grad()
            recon, mu, logvar = model(xb)
            loss = vae_loss(recon, xb, mu, logvar, beta)
            if guide is not None:
                loss = loss + ((mu - guide[idx]) ** 2 * guide_weight).sum(1).mean()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
            n += len(xb)
        log.history.append({"epoch": epoch, "loss": total / n})
        if progress:
            print(f"vae epoch {epoch:2d}  loss {total / n:.3f}")
        log.epochs = epoch
    model.eval()
    log.stopped = f"epochs={epochs}"
    log.seconds = time.perf_counter() - t0
    return log


def fine_tune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr_scale: float = 0.1,
    base_lr: float = 1e-3,
    epochs: int = 20,
    batch: int = 16,
    seed: int = 0,
) -> nn.Module:
    """CNNExp: retrain all layers of a copy of ``model`` on a small labelled set at
    ``lr_scale`` × the base learning rate (seed: 0.1×, 77 frames). BatchNorm statistics adapt
    to the new domain too. Returns the fine-tuned copy; ``model`` is unchanged."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"fine_tune needs as many labels as frames (>0); got {len(x)}, {len(y)}")
    tuned = copy.deepcopy(model)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(tuned.parameters(), lr=base_lr * lr_scale)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        tuned.train()
        for idx in _batches(len(x), batch, rng):
            opt.zero_grad()
            loss_fn(tuned(_friedel_flip(x[idx])), y[idx]).backward()
            opt.step()
    tuned.eval()
    return tuned
