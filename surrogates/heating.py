r"""Lattice heating from a frame: the apparent Debye–Waller factor against the reference.

UED measures lattice temperature through the Debye–Waller factor: Bragg intensities fall as
:math:`I(q) = I_0(q)\,\exp(-4\pi^2 q^2 \Delta\langle u^2\rangle)` (q without 2π) when the mean
square displacement grows by :math:`\Delta\langle u^2\rangle`. For every frame the estimator
regresses :math:`\ln(I/I_{ref})` on the Bragg pixels of the pristine reference against
:math:`4\pi^2 q^2`, with a free intercept (absorbs the frame's overall scale, i.e. the bunch
charge), weighted by the reference intensity. Minus the slope is the *apparent*
:math:`\Delta\langle u^2\rangle` in Å².

"Apparent": incoherent phonon populations and the detector's blur add to it, so it reads
several times the true thermal :math:`\Delta\langle u^2\rangle`; it rises monotonically with the
absorbed fluence on an untransformed lattice, which is what a damage precursor needs. Once the
lattice transforms, the Bragg pattern itself changes and the figure means little; use it as a
heating proxy below the transformation, not as a thermometer.
"""

from __future__ import annotations

import numpy as np

from uedsteer.sim_devices.physics import ReciprocalGrid

Q_MIN = 0.35
"""Smallest |q| (1/Å) used: inside it sit the beam stop and the central beam's tail."""
BRAGG_PERCENTILE = 97.0
"""Pixels of the reference above this percentile (outside Q_MIN) count as Bragg pixels."""


class HeatingEstimator:
    """Apparent Debye–Waller :math:`\\Delta\\langle u^2\\rangle` of frames against a reference.

    Parameters
    ----------
    reference : numpy.ndarray
        (n, n) mean of pristine frames (any scale).
    grid : ReciprocalGrid, optional
        The frames' grid (default: the seed grid).
    """

    def __init__(self, reference: np.ndarray, grid: ReciprocalGrid | None = None) -> None:
        grid = grid or ReciprocalGrid()
        ref = np.asarray(reference, dtype=np.float64)
        if ref.shape != grid.shape:
            raise ValueError(f"reference has shape {ref.shape}; the grid needs {grid.shape}")
        q2 = grid.qx**2 + grid.qy**2
        outside = q2 > Q_MIN**2
        if not np.any(ref[outside] > 0):
            raise ValueError("reference has no intensity outside the beam stop")
        mask = outside & (ref > np.percentile(ref[outside], BRAGG_PERCENTILE)) & (ref > 0)
        self.mask = mask
        self._log_ref = np.log(ref[mask])
        w = np.sqrt(ref[mask] / ref[mask].mean())
        design = np.stack([np.ones(mask.sum()), 4 * np.pi**2 * q2[mask]], axis=1)
        # weighted least squares: coefficients = pinv(W X) @ (W y); keep the slope row
        self._slope_row = np.linalg.pinv(design * w[:, None])[1] * w

    def estimate(self, frames: np.ndarray) -> np.ndarray:
        """Apparent :math:`\\Delta\\langle u^2\\rangle` (Å²) of each frame, (B,).

        Frames must be finite; pixels ≤ 0 on a Bragg position count as one count.
        """
        f = np.asarray(frames)
        if f.ndim == 2:
            f = f[None]
        # pick the Bragg pixels first, then widen: the same numbers at a fraction of the copy
        y = np.log(np.maximum(f[:, self.mask].astype(np.float64), 1.0)) - self._log_ref
        return -(y @ self._slope_row)
