r"""The sample of a simulated 4D-STEM scan: Au nanoparticles on amorphous carbon.

This is the experiment of the crystal-prediction seed (Gleason et al. 2024, Fig. 7): a focused
300 kV probe rasters a field of gold nanoparticles (AuNPs) on a carbon support film in steps of
2.1 nm, and at every probe position a peak finder reduces the diffraction pattern to a Bragg
list ``(qx, qy, I)``. Here the Bragg lists are simulated directly.

Sample (:class:`NanoparticleField`, a seeded pydantic model)
    Spherical FCC Au particles (a = 4.08 Å) with log-normal radii of a few nm, placed at random
    over the field (no overlap by default) until a target projected coverage is reached, each
    in a uniformly random 3-D orientation (optionally a share of them lying on [111], the
    preferred orientation of AuNPs on a support; drawn in
    :mod:`uedsteer.sim_devices.stem_particles`). Between them: amorphous carbon, which gives a
    diffuse background but no Bragg spots.

Pattern at a probe position (x, y) in nm (a point probe)
    Every particle whose disc covers the probe contributes its **dynamical** (Bloch-wave)
    Bragg list, computed by :func:`~uedsteer.sim_devices.physics.bragg.dynamical_bragg` for the
    particle's orientation at the **projected thickness** of the sphere under the probe,
    :math:`t = 2\sqrt{r^2 - \rho^2}`. The thickness is quantized to ``thickness_step_nm`` and
    each (particle, thickness, voltage) pattern is cached, so a particle costs a handful of
    Bloch-wave calculations however many probe positions it covers; the Au structure factor
    is built once per field. Thin edges diffract weakly, thick centres strongly, and the
    intensities follow the dynamical thickness dependence (not a kinematic :math:`t^2` rule).
    Where particles overlap (``allow_overlap=True``) the lists are joined: each particle's
    diffracted beams are attenuated by the other particles' transmission (the central-beam
    intensities) and the central beam is the product of the transmissions.

Detection (what a peak finder on a counting camera delivers)
    The incident probe carries ``dose_e_per_A2`` × (step)² electrons (400 e/Å² and 2.1 nm give
    1.8·10⁵ electrons). A spot's count is ``gain`` × Poisson(electrons × I), times a
    per-spot gain fluctuation of relative rms ``gain_noise``; spots under
    ``detection_threshold`` counts vanish; positions jitter by ``q_jitter`` (rms, 1/Å, per
    component); spots beyond ``k_max`` are outside the detector. On top, every pattern has
    Poisson(``spurious_rate``) spurious weak spots (hot pixels, carbon speckle), at most
    ``spurious_max`` = 3, so that a support-only position (central beam + ≤ 3 spurious spots)
    always fails the ≥ 5-spot filter of the paper.

Bragg list convention: rows ``(qx, qy, I)`` with q in 1/Å **without** 2π and I in detector
counts, sorted by decreasing intensity; the central beam is included (normally the first row).

Ground truth (tests and benchmarks only): :meth:`NanoparticleField.truth_at` and
:meth:`NanoparticleField.truth_maps` give, per position, the particle id (−1 = support), the
projected thickness, the lattice constant and the particle's orientation.

The ophyd devices that scan a field are in :mod:`uedsteer.sim_devices.stem_devices`.
"""

from __future__ import annotations

import threading

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .physics.bragg import dynamical_bragg, structure_factor_for
from .stem_particles import AU_LATTICE_CONSTANT, Particle, au_cell, draw_particles

__all__ = ["NanoparticleField"]

# The ideal lists keep beams down to 1e-7 of the incident beam (not the simulation
# convention's 1e-5, which is the training lists' threshold): what a probe records is decided
# by the detection threshold and the noise of ``measure``.
_IDEAL_MIN_INTENSITY = 1e-7


class NanoparticleField(BaseModel):
    """A seeded field of FCC Au nanoparticles on amorphous carbon, scanned by a 4D-STEM probe.

    The model's fields are the configuration (loadable from YAML with ``model_validate``);
    the particles are drawn from ``seed`` when the object is made, the detection noise from
    an independent stream of the same seed. See the module docstring for the physics.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    nx: int = Field(64, ge=1, description="Probe positions along x of the field's grid.")
    ny: int = Field(64, ge=1, description="Probe positions along y of the field's grid.")
    step_nm: float = Field(2.1, gt=0, description="Probe step of the field's grid, nm (seed).")
    lattice_constant: float = Field(
        AU_LATTICE_CONSTANT, gt=0, description="Cubic lattice constant of the Au particles, Å."
    )
    radius_median_nm: float = Field(4.0, gt=0, description="Median particle radius, nm.")
    radius_sigma: float = Field(
        0.25, ge=0, description="Log-normal width (σ of ln r) of the particle radii."
    )
    radius_min_nm: float = Field(1.5, gt=0, description="Smallest particle radius, nm.")
    radius_max_nm: float = Field(10.0, gt=0, description="Largest particle radius, nm.")
    coverage: float = Field(
        0.25, ge=0, le=0.6, description="Target projected area fraction covered by particles."
    )
    allow_overlap: bool = Field(
        False, description="Let particles overlap in projection (else rejection sampling)."
    )
    fraction_111: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of particles lying with [111] along the beam (random in-plane "
        "angle); the rest are oriented uniformly at random.",
    )
    k_max: float = Field(2.0, gt=0, description="Largest |q| simulated and detected, 1/Å.")
    sg_max: float = Field(0.05, gt=0, description="Largest excitation error of a beam, 1/Å.")
    thermal_sigma: float = Field(
        0.089, ge=0, description="Thermal rms displacement of Au, Å (B ≈ 0.62 Å² at 300 K)."
    )
    thickness_step_nm: float = Field(
        1.0, gt=0, description="Projected thicknesses are rounded to this step (cache key), nm."
    )
    dose_e_per_A2: float = Field(
        400.0, gt=0, description="Electron dose, e/Å²; one probe position gets dose × step²."
    )
    gain: float = Field(1.0, gt=0, description="Detector counts per electron.")
    gain_noise: float = Field(
        0.05, ge=0, description="Relative rms of the per-spot gain (integration) fluctuation."
    )
    detection_threshold: float = Field(
        100.0,
        ge=0,
        description="Spots with fewer counts are not detected, counts (a peak finder needs a "
        "spot to stand out of the diffuse carbon background; 100 of 1.8e5 electrons keeps "
        "~12 spots of a randomly oriented particle).",
    )
    q_jitter: float = Field(
        0.004, ge=0, description="Rms error of a detected spot position per component, 1/Å."
    )
    spurious_rate: float = Field(
        0.6, ge=0, description="Mean number of spurious weak spots per pattern (Poisson)."
    )
    spurious_max: int = Field(
        3,
        ge=0,
        le=3,
        description="Most spurious spots in one pattern (≤ 3: support fails the 5-spot filter).",
    )
    spurious_q_min: float = Field(
        0.15, ge=0, description="Spurious spots lie at |q| between this and k_max, 1/Å."
    )
    seed: int = Field(0, description="Seed of the particles and of the detection noise.")

    _particles: tuple[Particle, ...] = PrivateAttr(default=())
    _geometry: np.ndarray | None = PrivateAttr(default=None)
    _structure_factor: object = PrivateAttr(default=None)
    _cache: dict = PrivateAttr(default_factory=dict)
    _rng: np.random.Generator | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def model_post_init(self, __context) -> None:  # noqa: D102 - pydantic hook
        if self.radius_min_nm > self.radius_max_nm:
            raise ValueError(
                f"radius_min_nm={self.radius_min_nm} is above radius_max_nm={self.radius_max_nm}"
            )
        if self.spurious_q_min >= self.k_max:
            raise ValueError(f"spurious_q_min={self.spurious_q_min} must be below k_max")
        self._particles = draw_particles(self, np.random.default_rng([self.seed, 0]))
        self._geometry = np.array(
            [(p.x_nm, p.y_nm, p.radius_nm) for p in self._particles], dtype=float
        ).reshape(-1, 3)
        self._rng = np.random.default_rng([self.seed, 1])

    # ------------------------------------------------------------------ sample
    @property
    def extent_nm(self) -> tuple[float, float]:
        """Largest x and y of the field's grid, nm (positions run from 0 to these)."""
        return (self.nx - 1) * self.step_nm, (self.ny - 1) * self.step_nm

    @property
    def particles(self) -> tuple[Particle, ...]:
        """The particles (hidden truth)."""
        return self._particles

    @property
    def electrons_per_position(self) -> float:
        """Incident electrons per probe position (dose × step²)."""
        return self.dose_e_per_A2 * (10.0 * self.step_nm) ** 2

    def grid_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """x (nx,) and y (ny,) of the field's grid, nm."""
        return self.step_nm * np.arange(self.nx), self.step_nm * np.arange(self.ny)

    def particles_at(self, x_nm: float, y_nm: float) -> list[tuple[Particle, float]]:
        """Particles under a point probe at (x, y) nm, with their projected thickness (nm)."""
        if not self._particles:
            return []
        geom = self._geometry  # (n, 3): x, y, r
        rho2 = (geom[:, 0] - x_nm) ** 2 + (geom[:, 1] - y_nm) ** 2
        t = 2.0 * np.sqrt(np.clip(geom[:, 2] ** 2 - rho2, 0.0, None))
        return [(self._particles[i], float(t[i])) for i in np.flatnonzero(t > 0.0)]

    # ----------------------------------------------------------------- truth
    def truth_at(self, x_nm: float, y_nm: float) -> dict:
        """Hidden truth under the probe (tests and benchmarks only).

        Returns
        -------
        dict
            ``particle_id`` (thickest particle, −1 on the support), ``particle_ids`` (all),
            ``thickness_nm`` (total projected Au thickness), ``lattice_constant`` (Å, NaN on
            the support), ``beam_direction`` (crystal frame, of the thickest particle, or None).
        """
        under = sorted(self.particles_at(x_nm, y_nm), key=lambda pt: -pt[1])
        if not under:
            return {
                "particle_id": -1,
                "particle_ids": [],
                "thickness_nm": 0.0,
                "lattice_constant": float("nan"),
                "beam_direction": None,
            }
        top = under[0][0]
        return {
            "particle_id": top.index,
            "particle_ids": [p.index for p, _ in under],
            "thickness_nm": float(sum(t for _, t in under)),
            "lattice_constant": top.lattice_constant,
            "beam_direction": top.beam_direction,
        }

    def truth_maps(self) -> dict[str, np.ndarray]:
        """Hidden truth on the field's grid, arrays of shape (ny, nx).

        Returns
        -------
        dict
            ``particle_id`` (int, thickest particle, −1 = support), ``n_particles`` (overlap
            count), ``thickness_nm`` (total projected Au thickness) and ``lattice_constant``
            (Å, NaN on the support).
        """
        xs, ys = self.grid_positions()
        X, Y = np.meshgrid(xs, ys)
        pid = np.full(X.shape, -1, dtype=int)
        best = np.zeros(X.shape)
        total = np.zeros(X.shape)
        count = np.zeros(X.shape, dtype=int)
        a = np.full(X.shape, np.nan)
        for p in self._particles:
            t = p.thickness_nm(X, Y)
            on = t > 0
            total += t
            count += on
            top = t > best
            pid[top], best[top], a[top] = p.index, t[top], p.lattice_constant
        return {
            "particle_id": pid,
            "n_particles": count,
            "thickness_nm": total,
            "lattice_constant": a,
        }

    # --------------------------------------------------------------- physics
    @property
    def structure_factor(self):
        """abTEM structure factor of the Au cell, built once per field on first use."""
        with self._lock:
            if self._structure_factor is None:
                self._structure_factor = structure_factor_for(
                    au_cell(self.lattice_constant),
                    k_max=self.k_max,
                    thermal_sigma=self.thermal_sigma,
                )
        return self._structure_factor

    def _quantized(self, thickness_nm: float) -> float:
        step = self.thickness_step_nm
        return step * max(1, int(round(thickness_nm / step)))

    def particle_pattern(
        self, particle: Particle, thickness_nm: float, voltage_kv: float = 300.0
    ) -> np.ndarray:
        """Noise-free dynamical Bragg list of one particle (I as a fraction of the beam).

        The thickness is rounded to ``thickness_step_nm`` (at least one step); the result is
        cached per (particle, rounded thickness, voltage).
        """
        t = self._quantized(thickness_nm)
        key = (particle.index, round(t / self.thickness_step_nm), float(voltage_kv))
        hit = self._cache.get(key)
        if hit is None:
            hit = np.asarray(
                dynamical_bragg(
                    au_cell(particle.lattice_constant),
                    rotation=particle.rotation,
                    voltage_kv=float(voltage_kv),
                    k_max=self.k_max,
                    thickness_nm=t,
                    sg_max=self.sg_max,
                    thermal_sigma=self.thermal_sigma,
                    min_intensity=_IDEAL_MIN_INTENSITY,
                    structure_factor=self.structure_factor,
                ),
                dtype=float,
            ).reshape(-1, 3)
            self._cache[key] = hit
        return hit

    def ideal_bragg(self, x_nm: float, y_nm: float, voltage_kv: float = 300.0) -> np.ndarray:
        """Noise-free Bragg list at a probe position, I as a fraction of the incident beam.

        Support only: the central beam ``(0, 0, 1)``. Several particles: their diffracted beams
        joined, each attenuated by the others' transmission, and one central beam with the
        product of the transmissions.
        """
        under = self.particles_at(x_nm, y_nm)
        if not under:
            return np.array([[0.0, 0.0, 1.0]])
        patterns = [self.particle_pattern(p, t, voltage_kv) for p, t in under]
        central = [float(pat[0, 2]) for pat in patterns]  # row 0 is the central beam
        diffracted = [pat[1:] for pat in patterns]
        total_c = float(np.prod(central))
        rows = [np.array([[0.0, 0.0, total_c]])]
        for k, d in enumerate(diffracted):
            others = total_c / central[k] if central[k] > 0 else 0.0
            rows.append(d * np.array([1.0, 1.0, others]))
        return np.concatenate(rows, axis=0)

    def measure(
        self,
        x_nm: float,
        y_nm: float,
        voltage_kv: float = 300.0,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """A detected Bragg list at a probe position (noise, threshold, jitter, spurious spots).

        Parameters
        ----------
        x_nm, y_nm : float
            Probe position, nm.
        voltage_kv : float
            Accelerating voltage, kV.
        rng : numpy.random.Generator, optional
            Noise source (default: the field's own stream, seeded by ``seed``).

        Returns
        -------
        numpy.ndarray
            ``(n, 3)`` rows ``(qx, qy, counts)``, brightest first.
        """
        rng = self._rng if rng is None else rng
        ideal = self.ideal_bragg(x_nm, y_nm, voltage_kv)
        lam = np.clip(ideal[:, 2], 0.0, None) * self.electrons_per_position
        fluct = np.clip(1.0 + self.gain_noise * rng.standard_normal(len(lam)), 0.0, None)
        counts = self.gain * rng.poisson(lam) * fluct
        q = ideal[:, :2] + self.q_jitter * rng.standard_normal((len(lam), 2))
        keep = (counts >= self.detection_threshold) & (np.hypot(q[:, 0], q[:, 1]) <= self.k_max)
        spots = np.column_stack([q[keep], counts[keep]])
        n_sp = min(int(rng.poisson(self.spurious_rate)), self.spurious_max)
        if n_sp:
            # uniform in area over the annulus spurious_q_min … k_max
            r = np.sqrt(rng.uniform(self.spurious_q_min**2, self.k_max**2, n_sp))
            phi = rng.uniform(0.0, 2 * np.pi, n_sp)
            c = max(self.detection_threshold, self.gain) * (1.0 + rng.exponential(0.5, n_sp))
            spots = np.vstack([spots, np.column_stack([r * np.cos(phi), r * np.sin(phi), c])])
        return spots[np.argsort(-spots[:, 2], kind="stable")]

    def scan(self, voltage_kv: float = 300.0) -> np.ndarray:
        """Measure every position of the field's grid without ophyd (row-major, y outer).

        Returns
        -------
        numpy.ndarray
            (ny, nx) object array of (n, 3) Bragg lists.
        """
        xs, ys = self.grid_positions()
        out = np.empty((self.ny, self.nx), dtype=object)
        for iy, y in enumerate(ys):
            for ix, x in enumerate(xs):
                out[iy, ix] = self.measure(x, y, voltage_kv)
        return out
