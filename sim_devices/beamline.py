"""``SimulatedBeamline``: ophyd devices wired to the hidden sample and the physics backend.

It satisfies the beamline contract the plans drive (:class:`uedsteer.plans.protocols.Beamline`):
its settings by name (:data:`~uedsteer.sim_devices.contracts.SETTINGS`), the pump
shutter, the sample spot, the detector and the devices read with every frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .devices import DelayStage, ElectronGun, PumpLaser, SampleStage, UEDDetector
from .materials import Material, get_material
from .physics import (
    DetectorModel,
    ReciprocalGrid,
    add_thermal_displacements,
    add_vacancies,
    apply_strain,
    degrade,
    pixel_intensity,
)
from .physics.kinematic import check_oversample
from .response import ResponseParams, SampleResponse, ShotState, truth_record
from .roles import BeamlineRoles

BEAMLINE_DETECTOR = DetectorModel(
    psf_sigma_px=3.0,
    space_charge_px_per_fc=0.03,
    beam_stop_radius=0.12,
    readout_noise=2.0,
    pulses_per_frame=100,
    scattered_fraction=0.05,
)
"""The simulated beamline's detector. Its point spread, beam stop and noise differ on purpose
from the training generator's defaults (the domain shift that transfer learning closes)."""


REPLAY_SETTINGS = ("fluence", "wavelength", "delay")
"""The settings :meth:`SimulatedBeamline.replay` reads of each recorded pulse besides its spot,
shutter and frame count: what the sample's response to the pulse depends on (the bunch charge
changes only the frame)."""


class FrameRenderer:
    """Turn a :class:`ShotState` into a detector frame through the physics backend.

    Parameters
    ----------
    detector : DetectorModel
    grid : ReciprocalGrid
    supercell : (int, int)
        Cells along a and b (seed size 51 × 30).
    noise_level : float
        Seed-style structured noise level of this detector.
    oversample : int
        Samples per pixel edge of the kinematic intensity (odd, see
        :func:`~uedsteer.sim_devices.physics.pixel_intensity`): 1 (default) samples each pixel's
        centre, as the shipped scorer's training frames do; 3 or more integrate the pixel as a
        detector does.
    material : str or Material, optional
        The sample's material (default MoTe2); the state's ``x`` is its path fraction and
        ``vacancy_mo``/``vacancy_te`` the vacant fractions of its two ``vacancy_sites``.
    """

    def __init__(
        self,
        detector: DetectorModel = BEAMLINE_DETECTOR,
        grid: ReciprocalGrid | None = None,
        supercell: tuple[int, int] = (51, 30),
        noise_level: float = 0.1,
        material: str | Material | None = None,
        oversample: int = 1,
    ) -> None:
        self.oversample = check_oversample(oversample)
        self.detector = detector
        self.grid = grid or ReciprocalGrid()
        self.supercell = supercell
        self.noise_level = noise_level
        self.material = get_material(material)

    def structure(self, state: ShotState, rng: np.random.Generator):
        """The perturbed supercell for a shot state (phonons only on the untransformed phase)."""
        m = self.material
        atoms = m.supercell(m.phases[0], self.supercell, x=min(1.0, max(0.0, state.x)))
        if state.molten:
            return degrade(atoms, 0.95, 1.0, rng)
        if state.x < 0.02 and state.phonon_amplitudes:
            atoms = m.supercell(m.phases[0], self.supercell)
            for mode, amp in state.phonon_amplitudes.items():
                atoms = m.add_phonon(atoms, mode, amp, rng)
        if state.strain:
            atoms = apply_strain(atoms, [[state.strain, 0.0], [0.0, state.strain]])
        if state.vacancy_mo or state.vacancy_te:
            sites = dict(zip(m.vacancy_sites, (state.vacancy_mo, state.vacancy_te), strict=True))
            atoms = add_vacancies(atoms, sites, rng)
        return add_thermal_displacements(atoms, state.thermal_rms, rng)

    def render(self, state: ShotState, charge_fc: float, rng: np.random.Generator) -> np.ndarray:
        """One raw frame (float32 counts)."""
        intensity = pixel_intensity(self.structure(state, rng), self.grid, self.oversample)
        return self.detector.render(
            intensity, rng, self.grid, charge_fc=charge_fc, noise_level=self.noise_level
        )


class SimulatedBeamline(BeamlineRoles):
    """A complete simulated MeV-UED beamline.

    Parameters
    ----------
    response : ResponseParams, optional
        The hidden sample (default: the renderer's material's response defaults).
    seed : int
        Seed of every random number (same seed and same actions → same frames).
    n_spots : int
        Fresh spots on the sample.
    renderer : FrameRenderer, optional
        Physics backend and detector model.
    prefix : str
        Prefix of the device names (``pump``, ``gun``, ``delay``, ``stage``, ``det``).

    Attributes
    ----------
    pump, gun, delay, stage, detector
        The ophyd devices.
    settings, shutter, spot, motors, devices
        The beamline contract (:class:`uedsteer.plans.protocols.Beamline`) over them
        (:class:`~uedsteer.sim_devices.roles.BeamlineRoles`).
    sample : SampleResponse
        The hidden sample; benchmarks read :meth:`truth`, the controller never does.
    """

    def __init__(
        self,
        response: ResponseParams | None = None,
        seed: int = 0,
        n_spots: int = 100,
        renderer: FrameRenderer | None = None,
        prefix: str = "",
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.renderer = renderer or FrameRenderer()
        response = response or ResponseParams.for_material(self.renderer.material)
        self.sample = SampleResponse(response, n_spots=n_spots)
        self.pump = PumpLaser(name=f"{prefix}pump")
        self.gun = ElectronGun(name=f"{prefix}gun")
        self.delay = DelayStage(name=f"{prefix}delay")
        self.stage = SampleStage(name=f"{prefix}stage", n_spots=n_spots)
        self.detector = UEDDetector(name=f"{prefix}det", source=self._shot)
        self.history: list[dict] = []

    @property
    def sample_name(self) -> str:
        """The sample's material, for run metadata (``"MoTe2 monolayer"``)."""
        return self.renderer.material.description

    def _shot(self) -> np.ndarray:
        spot = int(self.spot.get())
        settings: dict = {name: float(sig.get()) for name, sig in self.settings.items()}
        settings["shutter"] = self.shutter.get()
        state = self.sample.shoot(
            spot,
            settings["fluence"],
            settings["wavelength"],
            settings["delay"],
            pumped=settings["shutter"] == "open",
        )
        self.history.append({**settings, **truth_record(spot, self.sample.spots[spot], state)})
        return self.renderer.render(state, settings["charge"], self.rng)

    def replay(self, pulses: Iterable[Mapping[str, Any]]) -> list[dict]:
        """Put the sample's spots in the state recorded shots left them in, without frames.

        The sample's damage is a deterministic function of the settings of each pulse (no
        random numbers), so replaying the recorded pulses in order reproduces every spot's
        vacancies, dose, melting and shot count exactly. Nothing is rendered, the devices do
        not move, :attr:`history` and the beamline's random numbers are left alone.

        Parameters
        ----------
        pulses : iterable of mapping
            One per detector trigger, in order: ``spot``, ``fluence`` (mJ/cm²),
            ``wavelength`` (nm), ``delay`` (ps), ``shutter`` (``"open"`` pumps the spot) and
            ``frames`` (pulses averaged into the trigger's frame, default 1).

        Returns
        -------
        list of dict
            Per trigger, the hidden truth after it (:func:`truth_record` of its spot and its
            last pulse), as :meth:`truth` would have returned then.
        """
        out = []
        for p in pulses:
            spot = int(p["spot"])
            state = None
            for _ in range(int(p.get("frames", 1))):
                state = self.sample.shoot(
                    spot,
                    float(p["fluence"]),
                    float(p["wavelength"]),
                    float(p["delay"]),
                    pumped=p["shutter"] == "open",
                )
            out.append(truth_record(spot, self.sample.spots[spot], state))
        return out

    def truth(self, spot: int | None = None) -> dict:
        """Hidden truth of a spot (default: the current one) and of its last shot.

        For benchmarks and tests only: the controller must never call this.
        """
        return self.sample.truth(int(self.stage.spot.get()) if spot is None else spot)
