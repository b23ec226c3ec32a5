"""The reciprocal-space grid on which UED frames are computed.

Conventions (used everywhere in uedsteer):

* q is in 1/Å **without** the factor 2π (q = 1/d for a Bragg spot of spacing d).
* A frame is indexed ``frame[iy, ix]``: rows follow ``qy``, columns follow ``qx``.
* The grid is odd-sized and centred: index ``n // 2`` is q = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ReciprocalGrid:
    """Square, origin-centred reciprocal grid (q in 1/Å without 2π).

    Parameters
    ----------
    n : int
        Number of pixels along each axis; must be odd so that q = 0 is a pixel.
        The ML-UED seed uses 261 (q from -1.3 to 1.3 1/Å).
    dq : float
        Pixel spacing in 1/Å; must be positive. Seed: 0.01.

    Raises
    ------
    ValueError
        If ``n`` is not an odd integer ≥ 3 or ``dq`` is not a positive finite number.
    """

    n: int = 261
    dq: float = 0.01
    _axis: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer):
            raise ValueError(f"n={self.n!r} must be an odd integer >= 3")
        if self.n < 3 or self.n % 2 == 0:
            raise ValueError(
                f"n={self.n} is not allowed: the grid size must be an odd integer >= 3 "
                "so that q = 0 falls on a pixel"
            )
        if not np.isfinite(self.dq) or self.dq <= 0:
            raise ValueError(f"dq={self.dq} is not allowed: the spacing must be > 0 (1/Å)")
        half = self.n // 2
        axis = np.arange(-half, half + 1, dtype=np.float64) * float(self.dq)
        axis.setflags(write=False)
        object.__setattr__(self, "_axis", axis)

    @property
    def axis(self) -> np.ndarray:
        """1-D q values of one axis, shape (n,), from -(n//2)·dq to +(n//2)·dq."""
        return self._axis

    @property
    def q_max(self) -> float:
        """Largest |q| along an axis (1/Å)."""
        return float(self._axis[-1])

    @property
    def qx(self) -> np.ndarray:
        """qx of every pixel, shape (n, n); varies along columns (axis 1)."""
        return np.broadcast_to(self._axis[None, :], (self.n, self.n))

    @property
    def qy(self) -> np.ndarray:
        """qy of every pixel, shape (n, n); varies along rows (axis 0)."""
        return np.broadcast_to(self._axis[:, None], (self.n, self.n))

    @property
    def q(self) -> np.ndarray:
        """|q| of every pixel, shape (n, n)."""
        return np.hypot(self.qx, self.qy)

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape (n, n)."""
        return (self.n, self.n)

    def index_of(self, qx: float, qy: float) -> tuple[int, int]:
        """Nearest pixel ``(iy, ix)`` of a reciprocal point.

        Parameters
        ----------
        qx, qy : float
            Reciprocal coordinates in 1/Å (without 2π).

        Returns
        -------
        tuple of int
            Row and column index into a frame.
        """
        half = self.n // 2
        return int(round(qy / self.dq)) + half, int(round(qx / self.dq)) + half
