"""Phonon-mode tables: the eigenvectors a frozen phonon displaces atoms along (package data).

A material ships its table as an ``.npz`` (e.g. ``materials/data/mote2_phonons.npz``, written by
``uedsteer phonons``, :mod:`uedsteer.sim_devices.phonon_calc`, phonopy + CHGNet). Runtime only
reads it, so CHGNet is an optional extra. Keys per phase key ``p`` (e.g. ``2H``, ``1Tp``):

* ``{p}_qpoints`` (nq, 3): q in reduced coordinates of the rectangular cell's reciprocal
  lattice; ``{p}_qlabels`` (nq,): e.g. ``Gamma``, ``M``, ``K``.
* ``{p}_frequencies_cm1`` (nq, 3n) and ``{p}_eigenvectors`` (nq, 3n, n, 3) complex for an
  n-atom cell (mode-major, phonopy's phase convention: u ∝ e exp(2πi q·r) / √m).
* ``settings``: JSON text with supercell, displacement, relaxation and software versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class ModeTable:
    """Phonon modes of one phase on its unit cell."""

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
        """q-point (3,) and eigenvector (n, 3) of a mode id such as ``"M:7"``."""
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


@lru_cache(maxsize=8)
def read_mode_table(package: str, resource: str, key: str, phase: str) -> ModeTable:
    """Read one phase's modes from a table shipped as package data.

    Parameters
    ----------
    package : str
        Package holding the file, e.g. ``"uedsteer.sim_devices.materials"``.
    resource : str
        Path of the ``.npz`` inside the package, e.g. ``"data/mote2_phonons.npz"``.
    key : str
        The phase's key prefix in the file (``"1Tp"`` for 1T').
    phase : str
        The phase name the table is labelled with.

    Raises
    ------
    FileNotFoundError
        If the package data is missing (re-create it with ``uedsteer phonons``).
    """
    res = resources.files(package).joinpath(resource)
    if not res.is_file():
        raise FileNotFoundError(
            f"phonon table {resource} is missing from the package; create it with "
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
