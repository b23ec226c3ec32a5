"""Read the shipped MoTe2 phonon-mode table (package data).

The table ``data/mote2_phonons.npz`` is written by ``uedsteer phonons``
(:mod:`uedsteer.sim_devices.phonon_calc`, phonopy + CHGNet). Runtime only reads it, so
CHGNet is an optional extra. Keys per phase ``p`` in {``2H``, ``1Tp``}:

* ``{p}_qpoints`` (nq, 3): q in reduced coordinates of the rectangular cell's reciprocal
  lattice; ``{p}_qlabels`` (nq,): ``Gamma``, ``M``, ``K`` (named after the hexagonal parent:
  M = (½, ½, 0), K = (⅔, 0, 0) in the rectangular setting).
* ``{p}_frequencies_cm1`` (nq, 18) and ``{p}_eigenvectors`` (nq, 18, 6, 3) complex
  (mode-major, phonopy's phase convention: u ∝ e exp(2πi q·r) / √m).
* ``settings``: JSON text with supercell, displacement, relaxation and software versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

DATA_FILE = "data/mote2_phonons.npz"
_KEY = {"2H": "2H", "1T'": "1Tp"}


@dataclass(frozen=True)
class ModeTable:
    """Phonon modes of one polytype on the matched 6-atom cell."""

    phase: str
    qpoints: np.ndarray
    qlabels: tuple[str, ...]
    frequencies_cm1: np.ndarray
    eigenvectors: np.ndarray
    settings: dict

    def mode_ids(self, include_acoustic_gamma: bool = False) -> list[str]:
        """All mode ids ``"<label>:<band>"``; Γ acoustic modes (uniform shifts) excluded."""
        ids = []
        for label in self.qlabels:
            for band in range(self.frequencies_cm1.shape[1]):
                if label == "Gamma" and band < 3 and not include_acoustic_gamma:
                    continue
                ids.append(f"{label}:{band}")
        return ids

    def mode(self, mode_id: str) -> tuple[np.ndarray, np.ndarray]:
        """q-point (3,) and eigenvector (6, 3) of a mode id such as ``"M:7"``."""
        try:
            label, band_text = str(mode_id).split(":")
            iq = self.qlabels.index(label)
            band = int(band_text)
            if not 0 <= band < self.frequencies_cm1.shape[1]:
                raise IndexError
        except (ValueError, IndexError):
            raise ValueError(
                f"mode={mode_id!r} is not a mode id; allowed: '<q>:<band>' with q in "
                f"{list(self.qlabels)} and band 0…{self.frequencies_cm1.shape[1] - 1}"
            ) from None
        return self.qpoints[iq], self.eigenvectors[iq, band]

    def inplane_fraction(self, mode_id: str) -> float:
        """Share of the eigenvector's weight in x and y (1 = fully in-plane)."""
        _, e = self.mode(mode_id)
        w = np.abs(e) ** 2
        return float(w[:, :2].sum() / w.sum())

    def frequency(self, mode_id: str) -> float:
        """Frequency of a mode in cm⁻¹."""
        label, band = mode_id.split(":")
        return float(self.frequencies_cm1[self.qlabels.index(label), int(band)])


@lru_cache(maxsize=2)
def load_modes(phase: str) -> ModeTable:
    """Load the shipped mode table of ``phase`` ("2H" or "1T'").

    Raises
    ------
    FileNotFoundError
        If the package data is missing (re-create it with ``uedsteer phonons``).
    """
    from .structures import canonical_phase

    phase = canonical_phase(phase)
    key = _KEY[phase]
    res = resources.files(__package__).joinpath(DATA_FILE)
    if not res.is_file():
        raise FileNotFoundError(
            f"phonon table {DATA_FILE} is missing from the package; create it with "
            "`uedsteer phonons` (needs `pip install uedsteer[phonons]`)"
        )
    with res.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        return ModeTable(
            phase=phase,
            qpoints=data[f"{key}_qpoints"].copy(),
            qlabels=tuple(str(s) for s in data[f"{key}_qlabels"]),
            frequencies_cm1=data[f"{key}_frequencies_cm1"].copy(),
            eigenvectors=data[f"{key}_eigenvectors"].copy(),
            settings=json.loads(str(data["settings"])),
        )
