"""The search space: physical settings, the models' coordinates, the ramp limit.

Every model works on coordinates scaled to [0, 1] over the search box (log-scaled parameters
on their logarithm). The heating and damage models see only what the pump does to the
sample (:data:`PROBE_SETTINGS` held at 0), and the heating model sees the log fluence.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import CampaignConfig, ParameterSpec

PROBE_SETTINGS = ("charge",)
"""Settings that act on the probe, not on the sample. The electron bunch charge changes a
frame's counts, noise and space-charge blur, while the energy a monolayer takes from the MeV
electrons is negligible next to the pump's; the heating and damage models (what the pump does
to the sample) therefore ignore them, while the objective and constraint models, which read the
frames, keep them."""


def _unit_raw(p: ParameterSpec, v: float) -> float:
    return float(np.log(v)) if p.log_scale else float(v)


class SearchSpace:
    """The steered parameters of a configuration: box, ramp limit, model coordinates.

    Parameters
    ----------
    config : CampaignConfig
        Its ``parameters`` (in order) span the space.
    """

    def __init__(self, config: CampaignConfig) -> None:
        self.parameters = tuple(config.parameters)
        self.names: list[str] = [p.name for p in self.parameters]
        self._lo = np.array([_unit_raw(p, p.low) for p in self.parameters])
        self._hi = np.array([_unit_raw(p, p.high) for p in self.parameters])
        self.box_low = np.array([p.low for p in self.parameters])
        self.box_high = np.array([p.high for p in self.parameters])
        self.steps = np.array([p.max_step for p in self.parameters])
        """Ramp limit per parameter (physical units)."""

    @property
    def fluence(self) -> int | None:
        """Column of the fluence, None when it is not steered."""
        return self.names.index("fluence") if "fluence" in self.names else None

    @property
    def wavelength(self) -> int | None:
        """Column of the wavelength, None when it is not steered."""
        return self.names.index("wavelength") if "wavelength" in self.names else None

    def to_model(self, settings: np.ndarray) -> np.ndarray:
        """Physical settings (n, d) → model coordinates scaled to [0, 1]."""
        x = np.array(settings, dtype=np.float64, ndmin=2)
        for j, p in enumerate(self.parameters):
            if p.log_scale:
                x[:, j] = np.log(x[:, j])
        return (x - self._lo) / (self._hi - self._lo)

    def from_model(self, u: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_model`."""
        x = np.array(u, dtype=np.float64, ndmin=2) * (self._hi - self._lo) + self._lo
        for j, p in enumerate(self.parameters):
            if p.log_scale:
                x[:, j] = np.exp(x[:, j])
        return x

    def training_data(
        self, settings: np.ndarray, values: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """GP training data from measured ``settings`` (n, d) and an outcome ``values`` (n,):
        inputs (model coordinates), outcomes (k, 1) and the mask of the k rows used (finite
        settings and outcome)."""
        ok = np.isfinite(values) & np.all(np.isfinite(settings), axis=1)
        x = torch.tensor(self.to_model(settings[ok]))
        return x, torch.tensor(np.asarray(values, dtype=np.float64)[ok])[:, None], ok

    def within_ramp(self, point: np.ndarray, last: np.ndarray) -> bool:
        """True if ``point`` is within every parameter's ramp limit of ``last``."""
        return bool(np.all(np.abs(np.asarray(point) - np.asarray(last)) <= self.steps + 1e-9))

    def at_other_settings(
        self, settings: np.ndarray, point: np.ndarray, tol: float = 1e-9
    ) -> np.ndarray:
        """Mask of the rows of ``settings`` (n, d) that stand at the settings of ``point``
        (d,) in every parameter but the fluence (relative and absolute tolerance ``tol``)."""
        j = self.names.index("fluence")
        others = [i for i in range(len(self.names)) if i != j]
        close = np.isclose(
            np.array(settings, ndmin=2)[:, others], np.asarray(point)[others], rtol=tol, atol=tol
        )
        return np.all(close, axis=1)

    def sample_side(self, u: np.ndarray) -> np.ndarray:
        """Model coordinates ``u`` with the :data:`PROBE_SETTINGS` held at 0 (in place)."""
        for name in PROBE_SETTINGS:
            if name in self.names:
                u[:, self.names.index(name)] = 0.0
        return u

    def heating_features(self, settings: np.ndarray) -> np.ndarray:
        """Inputs of the heating model: log fluence scaled over the fluence range (heating is
        close to a power law of it) and the other sample-side parameters, all in [0, 1]."""
        settings = np.asarray(settings, dtype=np.float64)
        u = self.sample_side(self.to_model(settings))
        j = self.fluence
        if j is not None:
            p = self.parameters[j]
            lo, hi = np.log(p.low), np.log(p.high)
            u[:, j] = (np.log(np.maximum(settings[:, j], 1e-6)) - lo) / (hi - lo)
        return u

    def at_heating_delay(self, settings: np.ndarray) -> np.ndarray:
        """Mask of the rows of ``settings`` whose frames can read the lattice heating.

        With the pump–probe delay steered, a frame before the safe start's delay shows less
        than the pump deposited (before time zero nothing, while the lattice heats a part), so
        it is no heating reading; at the safe start's delay and later the lattice has heated at
        least as much. Every row when the delay is not steered.
        """
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        if "delay" not in self.names:
            return np.ones(len(settings), dtype=bool)
        j = self.names.index("delay")
        return settings[:, j] >= self.parameters[j].safe_start - 1e-6
