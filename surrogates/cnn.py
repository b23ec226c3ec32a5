"""CNN classifiers of difference images: the seed's WideResNet (reference) and UEDNet."""

from __future__ import annotations

import torch
from torch import nn

from uedsteer.sim_devices.materials import default_material

N_CLASSES = len(default_material().classes)
"""Default number of classes: the default material's (8 for MoTe2)."""


class _WideResLayer(nn.Module):
    """Seed WideResNet layer: two 7 × 7 conv + BatchNorm + ReLU, dropout, 1 × 1 projection."""

    def __init__(self, c_in: int, c_out: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 7, padding=3, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(c_out, c_out, 7, padding=3, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.relu(self.body(x) + self.skip(x))


class SeedWideResNet(nn.Module):
    """The ML-UED seed's classifier, as a faithful reference (used for comparison only).

    Stem 7 × 7 conv (2 → 16), then 3 blocks of 2 WideResNet layers (16 → 32 → 64 → 128), each
    block followed by 3 × 3 max-pooling (261 → 87 → 29 → 9), average pooling 3 (→ 3 × 3),
    one linear layer. Input: (B, 2, 261, 261) difference channels. ≈ 40 GFLOP a frame.
    """

    def __init__(self, n_classes: int = N_CLASSES, dropout: float = 0.1) -> None:
        super().__init__()
        chans = [16, 32, 64, 128]
        layers: list[nn.Module] = [
            nn.Conv2d(2, 16, 7, padding=3, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [_WideResLayer(c_in, c_out, dropout), _WideResLayer(c_out, c_out, dropout)]
            layers.append(nn.MaxPool2d(3))
        layers.append(nn.AvgPool2d(3))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(128 * 9, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(torch.flatten(self.features(x), 1))


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    # GroupNorm, not BatchNorm: no running statistics, so eval behaves like training even
    # after a few small-batch fine-tuning steps on a new beamline's frames.
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(8, c_out),
        nn.ReLU(inplace=True),
    ]


class UEDNet(nn.Module):
    """Real-time classifier on pooled difference images (B, 2, 87, 87).

    Four 3 × 3 conv + GroupNorm + ReLU layers (16-32-64-64), each of the first three followed
    by a 2 × 2 max-pool (87 → 43 → 21 → 10), adaptive average pooling to 5 × 5 (keeps where
    in reciprocal space a change happens), dropout and one linear layer. ≈ 0.045 GFLOP a
    frame, ~900× less than the seed network: one conv per resolution, because at batch 1
    a frame's convolutions are most of the scorer's CPU time, and on a beamline computer
    whose cores other processes keep busy the latency is that CPU time divided by the share
    the process gets.
    """

    def __init__(self, n_classes: int = N_CLASSES, dropout: float = 0.1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv(2, 16),
            nn.MaxPool2d(2),
            *_conv(16, 32),
            nn.MaxPool2d(2),
            *_conv(32, 64),
            nn.MaxPool2d(2),
            *_conv(64, 64),
            nn.AdaptiveAvgPool2d(5),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(64 * 25, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(torch.flatten(self.features(x), 1))


def load_uednet(path, n_classes: int = N_CLASSES) -> UEDNet:
    """A :class:`UEDNet` of ``n_classes`` outputs with the weights in ``path``
    (``weights_only``: no code runs), in eval mode.

    Raises
    ------
    ValueError
        If the file holds weights of another layout (another number of classes, or a
        network trained before the layout changed): retrain with ``uedsteer train cnn``.
    """
    net = UEDNet(n_classes)
    state = torch.load(path, weights_only=True)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if ours != theirs:
        raise ValueError(
            f"path={str(path)!r} holds CNN weights of another layout than this version's "
            f"UEDNet ({len(theirs)} tensors, {len(ours)} expected, for {n_classes} classes); "
            "retrain it with 'uedsteer train cnn' (and 'uedsteer train finetune')"
        )
    net.load_state_dict(state)
    return net.eval()
