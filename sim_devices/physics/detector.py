"""Detector model for UED frames: point spread, space charge, shot noise, beam stop.

From a kinematic intensity I(q) to a detector frame in counts, in this order:

1. **Point spread + space charge**: Gaussian blur with σ(Q) = √(σ₀² + (k·Q)²) pixels, so
   spots broaden as the bunch charge Q (fC) grows.
2. **Shot noise**: the frame integrates ``pulses_per_frame`` bunches of Q·6,242 electrons; a
   fraction ``scattered_fraction`` lands outside the beam stop, distributed as the blurred
   intensity; counts are Poisson in that electron number. More charge: less noise, more blur.
3. **Seed noise** (ML-UED seed, level 0…0.5): level · N(0.5, 0.5) · blur(expected, σ = 6 px)
   per pixel, a structured background that mimics inelastic/diffuse scattering.
4. **Readout noise**: Gaussian, ``readout_noise`` counts rms; then the gain and the frame's
   intensity ``scale`` (the seed draws Gamma(2, 1), clipped at ≥ 0.1).
5. **Beam stop**: pixels with |q| ≤ ``beam_stop_radius`` read 0.

Every random number comes from the caller's ``np.random.Generator``.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import gaussian_filter

from .grid import ReciprocalGrid

ELECTRONS_PER_FC = 6241.509  # 1 fC / e


class DetectorModel(BaseModel):
    """Parameters of the simulated UED detector (all documented, validated on construction)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beam_stop_radius: float = Field(
        0.15, ge=0.0, description="Beam-stop radius in 1/Å (no 2π); pixels inside read 0."
    )
    psf_sigma_px: float = Field(
        4.0, ge=0.0, le=50.0, description="Gaussian point-spread σ at zero charge, pixels."
    )
    space_charge_px_per_fc: float = Field(
        0.02,
        ge=0.0,
        description="Space-charge blur per fC of bunch charge, pixels, added in quadrature.",
    )
    pulses_per_frame: int = Field(
        100, ge=1, description="Electron bunches integrated into one frame."
    )
    scattered_fraction: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Fraction of beam electrons scattered outside the beam stop (monolayer: ~5 %).",
    )
    gain: float = Field(1.0, gt=0.0, description="Detector counts per electron.")
    readout_noise: float = Field(0.5, ge=0.0, description="Gaussian readout noise, counts rms.")
    seed_noise_sigma_px: float = Field(
        6.0, ge=0.0, description="Blur σ of the seed's multiplicative noise field, pixels."
    )

    def psf_sigma(self, charge_fc: float) -> float:
        """Total blur σ in pixels at bunch charge ``charge_fc`` (fC)."""
        return float(np.hypot(self.psf_sigma_px, self.space_charge_px_per_fc * charge_fc))

    def mask(self, grid: ReciprocalGrid) -> np.ndarray:
        """Boolean (n, n): True where the detector sees signal (outside the beam stop)."""
        return grid.q > self.beam_stop_radius

    def expected_counts(
        self, intensity: np.ndarray, grid: ReciprocalGrid, charge_fc: float
    ) -> np.ndarray:
        """Noise-free mean counts per pixel (blurred, scaled to the scattered electrons)."""
        blurred = gaussian_filter(intensity, self.psf_sigma(charge_fc), mode="constant")
        blurred *= self.mask(grid)
        total = blurred.sum()
        n_e = charge_fc * ELECTRONS_PER_FC * self.pulses_per_frame * self.scattered_fraction
        return blurred * (n_e / total) if total > 0 else blurred

    def render(
        self,
        intensity: np.ndarray,
        rng: np.random.Generator,
        grid: ReciprocalGrid | None = None,
        charge_fc: float = 10.0,
        noise_level: float = 0.0,
        scale: float = 1.0,
        shot_noise: bool = True,
    ) -> np.ndarray:
        """Turn a kinematic intensity into a detector frame (float32 counts).

        Parameters
        ----------
        intensity : numpy.ndarray
            (n, n) kinematic intensity on ``grid``.
        rng : numpy.random.Generator
            Source of every random number.
        grid : ReciprocalGrid, optional
            Default: the seed grid.
        charge_fc : float
            Bunch charge in fC, > 0 (the beamline's range is 1–200 fC).
        noise_level : float
            Seed noise level in [0, 1] (the seed uses up to 0.5).
        scale : float
            Frame intensity scale (> 0).
        shot_noise : bool
            Poisson counting noise on/off (off gives the expected counts).

        Returns
        -------
        numpy.ndarray
            (n, n) float32 frame; 0 under the beam stop.
        """
        grid = grid or ReciprocalGrid()
        intensity = np.asarray(intensity, dtype=np.float64)
        if intensity.shape != grid.shape:
            raise ValueError(f"intensity has shape {intensity.shape}; the grid needs {grid.shape}")
        if not np.all(np.isfinite(intensity)) or np.any(intensity < 0):
            raise ValueError("intensity must be finite and non-negative")
        if not (np.isfinite(charge_fc) and charge_fc > 0):
            raise ValueError(f"charge_fc={charge_fc} must be > 0 fC")
        if not 0.0 <= noise_level <= 1.0:
            raise ValueError(f"noise_level={noise_level} is outside the allowed range [0, 1]")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale={scale} must be > 0")
        mean = self.expected_counts(intensity, grid, charge_fc)
        frame = rng.poisson(mean).astype(np.float64) if shot_noise else mean.copy()
        if noise_level > 0:
            field = rng.normal(0.5, 0.5, size=grid.shape)
            frame += noise_level * field * gaussian_filter(mean, self.seed_noise_sigma_px)
        frame *= self.gain
        if self.readout_noise > 0:
            frame += rng.normal(0.0, self.readout_noise, size=grid.shape)
        frame *= scale
        frame *= self.mask(grid)
        return frame.astype(np.float32)
