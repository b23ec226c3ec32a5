"""The Au nanoparticles of a simulated 4D-STEM field: FCC cell, one particle, the seeded drawing.

:class:`~uedsteer.sim_devices.stem_sample.NanoparticleField` holds the settings and draws its
particles here; see its module for the physics of the scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial.transform import Rotation

from .physics.bragg import zone_axis_rotation

if TYPE_CHECKING:
    from .stem_sample import NanoparticleField

__all__ = ["AU_LATTICE_CONSTANT", "Particle", "au_cell", "draw_particles"]

AU_LATTICE_CONSTANT = 4.08
"""Lattice constant of FCC gold, Å (the value the seed compares its predicted median with)."""

_BEAM = np.array([0.0, 0.0, 1.0])


def au_cell(a: float = AU_LATTICE_CONSTANT):
    """Conventional 4-atom cubic cell of FCC gold (``ase.Atoms``) with lattice constant ``a`` Å."""
    from ase.build import bulk

    return bulk("Au", "fcc", a=float(a), cubic=True)


@dataclass(frozen=True, eq=False)
class Particle:
    """One spherical Au particle of the field.

    Attributes
    ----------
    index : int
        Particle id (row of
        :attr:`~uedsteer.sim_devices.stem_sample.NanoparticleField.particles`).
    x_nm, y_nm : float
        Centre in the scan frame, nm.
    radius_nm : float
        Radius, nm.
    rotation : numpy.ndarray
        (3, 3) orientation matrix passed to the Bragg simulator (crystal axes → lab frame, the
        beam along lab z).
    lattice_constant : float
        Cubic lattice constant, Å.
    """

    index: int
    x_nm: float
    y_nm: float
    radius_nm: float
    rotation: np.ndarray
    lattice_constant: float

    @property
    def beam_direction(self) -> np.ndarray:
        """Unit vector along the beam in the crystal's Cartesian frame (≈ the zone axis)."""
        return self.rotation.T @ _BEAM

    def thickness_nm(self, x_nm, y_nm) -> np.ndarray:
        """Projected thickness of the sphere at probe position(s) (0 outside), nm."""
        rho2 = (np.asarray(x_nm) - self.x_nm) ** 2 + (np.asarray(y_nm) - self.y_nm) ** 2
        return 2.0 * np.sqrt(np.clip(self.radius_nm**2 - rho2, 0.0, None))


def _in_plane(phi: float) -> np.ndarray:
    c, s = np.cos(phi), np.sin(phi)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def draw_particles(field: NanoparticleField, rng: np.random.Generator) -> tuple[Particle, ...]:
    """The particles of ``field``, drawn from ``rng``: log-normal radii, uniform positions over
    the grid's area (rejected where they would overlap, unless ``allow_overlap``), until the
    target ``coverage``; each oriented at random, or on [111] with probability ``fraction_111``."""
    wx = field.nx * field.step_nm  # the area the grid's pixels cover
    wy = field.ny * field.step_nm
    lo = -0.5 * field.step_nm
    mu = np.log(field.radius_median_nm)
    mean_area = np.pi * field.radius_median_nm**2 * np.exp(2 * field.radius_sigma**2)
    n_target = int(round(field.coverage * wx * wy / mean_area))
    cubic = au_cell(field.lattice_constant).cell.array
    r111 = zone_axis_rotation(cubic, (1, 1, 1))
    placed: list[Particle] = []
    tries = 0
    while len(placed) < n_target and tries < 200 * max(n_target, 1):
        tries += 1
        r = float(
            np.clip(rng.lognormal(mu, field.radius_sigma), field.radius_min_nm, field.radius_max_nm)
        )
        x, y = lo + wx * rng.random(), lo + wy * rng.random()
        if not field.allow_overlap and any(
            np.hypot(x - p.x_nm, y - p.y_nm) < r + p.radius_nm for p in placed
        ):
            continue
        if rng.random() < field.fraction_111:
            rot = _in_plane(2 * np.pi * rng.random()) @ r111
        else:
            rot = Rotation.random(rng=rng).as_matrix()
        placed.append(Particle(len(placed), x, y, r, rot, field.lattice_constant))
    return tuple(placed)
