"""Convolutional VAE of raw frames and the 2H–1T' line in its latent space."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CHANNELS = (16, 32, 64, 64)


class ConvVAE(nn.Module):
    """Conv encoder / transposed-conv decoder on (B, 1, 64, 64) inputs in [0, 1].

    Encoder: four 4 × 4 stride-2 convs (16-32-64-64, ReLU) → mean and log-variance of a
    ``latent_dim``-dimensional Gaussian; decoder mirrors it and ends in a sigmoid.
    """

    def __init__(self, latent_dim: int = 4) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        ch = [1, *CHANNELS]
        enc: list[nn.Module] = []
        for a, b in zip(ch[:-1], ch[1:], strict=True):
            enc += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        flat = CHANNELS[-1] * 16
        self.mu = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim)
        self.expand = nn.Linear(latent_dim, flat)
        dec: list[nn.Module] = []
        rev = ch[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:], strict=True)):
            dec.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            dec.append(nn.ReLU(inplace=True) if i < len(rev) - 2 else nn.Sigmoid())
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x)."""
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, 1, 64, 64) in [0, 1]."""
        return self.decoder(self.expand(z).view(-1, CHANNELS[-1], 4, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, mean, log-variance (sampling z in training mode)."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> torch.Tensor:
    """MSE (summed over pixels) + β · KL, averaged over the batch."""
    mse = ((recon - x) ** 2).flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
    return (mse + beta * kl).mean()


class LatentLine:
    """The segment through the mean latent codes of pristine 2H and 1T' frames.

    Parameters
    ----------
    z_2h, z_1tp : array_like
        Mean latent vectors of the two end points.
    """

    def __init__(self, z_2h: np.ndarray, z_1tp: np.ndarray) -> None:
        self.z_2h = np.asarray(z_2h, dtype=np.float64)
        self.z_1tp = np.asarray(z_1tp, dtype=np.float64)
        d = self.z_1tp - self.z_2h
        self.length = float(np.linalg.norm(d))
        if self.length == 0:
            raise ValueError("2H and 1T' latent means coincide: the line is undefined")
        self.direction = d / self.length

    @classmethod
    def fit(cls, z_2h: np.ndarray, z_1tp: np.ndarray) -> LatentLine:
        """Line through the means of two sets of latent codes (N, d)."""
        return cls(np.mean(z_2h, axis=0), np.mean(z_1tp, axis=0))

    def project(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Progress s ∈ [0, 1] along the segment and Euclidean distance to it.

        Parameters
        ----------
        z : array_like, shape (B, d)

        Returns
        -------
        progress, distance : numpy.ndarray, shape (B,)
        """
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        t = (z - self.z_2h) @ self.direction / self.length
        s = np.clip(t, 0.0, 1.0)
        nearest = self.z_2h + np.outer(s * self.length, self.direction)
        return s, np.linalg.norm(z - nearest, axis=1)

    def to_dict(self) -> dict:
        """Plain lists, for the model file."""
        return {"z_2h": self.z_2h.tolist(), "z_1tp": self.z_1tp.tolist()}
