r"""The simulated sample's response to the pump: hidden truth for simulation and benchmarks.

The controller never reads this module's state; only the simulated detector (to render
frames) and benchmarks (to score campaigns) do.

Model (all parameters are fields of :class:`ResponseParams`, with units):

**Absorption.** Photon energy :math:`E = 1239.84/\lambda` eV. Absorbance of the monolayer

.. math:: A(E) = a_0\,\sigma\!\left(\frac{E - E_g}{w_g}\right)
          + \sum_{k\in\{A,B,C\}} h_k \exp\!\left(-\frac{(E-E_k)^2}{2 w_k^2}\right),

with the MoTe2 excitons A ≈ 1.10 eV, B ≈ 1.35 eV, C ≈ 2.3 eV and a band-edge step at
:math:`E_g`. The absorbed fluence is :math:`\varepsilon = F\,A(E)` (mJ/cm²).

**Resonance.** Photon-energy-selective excitation of the M-point modes that drive 2H → 1T'
(Krishnamoorthy et al., Nano Lett. 2019): :math:`R(E) = \exp(-(E-E_r)^2/2w_r^2)`.
The transformation threshold :math:`\varepsilon_T(E) = \varepsilon_{T0}/(1 + g\,R(E))` is
low only inside the band; outside it lies above the damage threshold :math:`\varepsilon_D`.

**Transformation.** :math:`x = \sigma((\varepsilon - \varepsilon_T)/(k\,\varepsilon_T))\;
D(t)` with the delay response :math:`D(t) = (1 - e^{-t/\tau_x}) e^{-t/\tau_r}` for t ≥ 0 and
0 before time zero. On a damaged spot only the intact fraction transforms.

**Heating.** Temperature rise :math:`\Delta T = c_T\,\varepsilon\,(1-e^{-t/\tau_{th}})`;
thermal rms :math:`u = \sqrt{u_0^2 + k_u \Delta T}`; isotropic expansion
:math:`\epsilon = \alpha\,\Delta T`.

**Phonons.** Frozen-phonon amplitudes (Å) of an M-point mode
:math:`a_M = s_M\,\varepsilon\,R(E)\,e^{-t/\tau_{ph}}` (t ≥ 0) and a K-point mode
:math:`a_K = s_K\,\varepsilon\,e^{-t/\tau_{ph}}`, capped at 0.3 Å.

**Damage** (irreversible, per sample spot, one step per shot with the shutter open). Te and Mo
vacancy fractions grow by

.. math:: \Delta v = r_s\,(\varepsilon/\varepsilon_D)^{p}
          + r_f\,\max(0, \varepsilon/\varepsilon_D - 1)

(Te sublimates first: :math:`\Delta v_{Mo} = m\,\Delta v_{Te}`), capped at 1. A shot with
:math:`\varepsilon \ge f_{melt}\,\varepsilon_D` melts the spot; a spot with ≥ 90 % vacant
sites counts as molten too.

``ResponseParams.random(seed)`` draws a family of samples (resonance position and width,
thresholds ±30 %) for benchmarks. ``ResponseParams.random_wide(seed)`` draws the *wide family*:
every property a real sample may have differently from the defaults (:data:`WIDE_RANGES`), to
measure the controller under model misspecification (issue 33).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .materials import Material, default_material, get_material

HC_EV_NM = 1239.84
_DEFAULTS = default_material().response
"""The material-specific defaults (absorption, resonance, thresholds, driven modes): MoTe2's."""


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))))


@dataclass(frozen=True)
class WideRange:
    """How :meth:`ResponseParams.random_wide` draws one property.

    ``kind``:

    * ``"factor"``: the default times a log-uniform factor in [low, high];
    * ``"shift"``: the default plus a uniform shift in [low, high] (eV);
    * ``"uniform"``: uniform in [low, high], whatever the default;
    * ``"excess"``: 1 + (default − 1) × a log-uniform factor in [low, high] (for a factor
      that must stay above 1, such as the melt factor).

    Tuple-valued properties (the three excitons) draw each element independently.
    """

    kind: str
    low: float
    high: float
    why: str = ""

    def within(self, value: float, default: float, rtol: float = 1e-9) -> bool:
        """Whether ``value`` is a possible draw around ``default`` (for tests)."""
        r = self.relative(value, default)
        return self.low * (1 - rtol) - rtol <= r <= self.high * (1 + rtol) + rtol

    def relative(self, value: float, default: float) -> float:
        """``value`` in the units of [low, high]: a factor, a shift or the value itself."""
        if self.kind == "factor":
            return value / default
        if self.kind == "shift":
            return value - default
        if self.kind == "excess":
            return (value - 1.0) / (default - 1.0)
        return value


WIDE_RANGES: dict[str, WideRange] = {
    # absorbance spectrum
    "exciton_energies_ev": WideRange(
        "shift",
        -0.10,
        0.10,
        "substrate, strain and dielectric screening move excitons by tens of meV",
    ),
    "edge_ev": WideRange("shift", -0.10, 0.10, "moves with the A exciton (the same shift)"),
    "exciton_heights": WideRange("factor", 0.5, 2.0, "oscillator strength, thickness, substrate"),
    "exciton_widths_ev": WideRange("factor", 1 / 1.5, 1.5, "inhomogeneous broadening"),
    "continuum": WideRange("factor", 0.5, 2.0, "absorbance above the edge"),
    # resonance: as ResponseParams.random draws it
    "resonance_ev": WideRange("uniform", 1.3, 2.0, "as ResponseParams.random"),
    "resonance_width_ev": WideRange("factor", 0.7, 1.3, "as ResponseParams.random"),
    "resonance_gain": WideRange("factor", 0.7, 1.3, "as ResponseParams.random"),
    # thresholds: wider than the family's ±30 %
    "transform_threshold": WideRange("factor", 1 / 1.6, 1.6, "family: 0.7-1.3"),
    "damage_threshold": WideRange("factor", 1 / 1.6, 1.6, "family: 0.7-1.3"),
    "transform_steepness": WideRange("factor", 0.5, 2.0, "sharp or broad transition"),
    # damage law
    "damage_slow_rate": WideRange("factor", 0.5, 2.0, "sub-threshold vacancy rate at ε_D"),
    "damage_slow_power": WideRange("factor", 0.5, 2.0, "sub-threshold power law, 2-8"),
    "damage_fast_rate": WideRange("factor", 0.5, 2.0, "above-threshold vacancy rate"),
    "melt_factor": WideRange("excess", 0.5, 2.0, "f_melt - 1 from half to twice: 1.75-4"),
    # heating
    "heating_k_per_mj": WideRange("factor", 0.5, 2.0, "heat capacity, thermal contact"),
    "thermal_rms_k": WideRange("factor", 0.5, 2.0, "Debye-Waller rms growth per kelvin"),
    "tau_thermal_ps": WideRange("factor", 0.5, 2.0, "electron-phonon coupling time"),
}
"""The wide family's ranges (:meth:`ResponseParams.random_wide`), one entry per drawn field.

Every property that :meth:`ResponseParams.random` keeps at its default is drawn here too: the
absorbance spectrum (exciton energies, heights and widths, continuum; the band edge moves with
the A exciton), the thresholds (log-uniform within a factor 1.6 either way, against the
family's ±30 %), the transition steepness, the damage law, the heating per absorbed energy,
the thermal-rms coefficient and the heating time (log-uniform within a factor 2 either way).
The resonance is drawn as ``random`` draws it. Not drawn (kept at their defaults): the band
edge width, the Mo/Te damage ratio, the transform and recovery times, the room-temperature rms,
the thermal expansion and the phonon amplitudes. The only ordering the model needs, a safe
window (ε_T0/(1+g) < ε_D, the validator of :class:`ResponseParams`), is met by redrawing.
"""


class ResponseParams(BaseModel):
    """Parameters of the simulated sample response (units in each description).

    The material-specific defaults are the default material's (MoTe2,
    :data:`uedsteer.sim_devices.materials.mote2.MOTE2` ``.response``); another material's
    come from :meth:`for_material`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # absorption
    exciton_energies_ev: tuple[float, float, float] = Field(
        _DEFAULTS["exciton_energies_ev"], description="A, B, C exciton energies, eV."
    )
    exciton_heights: tuple[float, float, float] = Field(
        _DEFAULTS["exciton_heights"], description="Absorbance peak heights of A, B, C (fraction)."
    )
    exciton_widths_ev: tuple[float, float, float] = Field(
        _DEFAULTS["exciton_widths_ev"], description="Gaussian widths (σ) of A, B, C, eV."
    )
    edge_ev: float = Field(_DEFAULTS["edge_ev"], gt=0, description="Band-edge step energy, eV.")
    edge_width_ev: float = Field(
        _DEFAULTS["edge_width_ev"], gt=0, description="Band-edge step width, eV."
    )
    continuum: float = Field(
        _DEFAULTS["continuum"], ge=0, le=1, description="Absorbance above the edge."
    )
    # resonance and thresholds (absorbed fluence, mJ/cm²)
    resonance_ev: float = Field(
        _DEFAULTS["resonance_ev"],
        gt=0,
        description="Centre of the resonance band (photon energy), eV.",
    )
    resonance_width_ev: float = Field(
        _DEFAULTS["resonance_width_ev"], gt=0, description="σ of the resonance band, eV."
    )
    resonance_gain: float = Field(
        _DEFAULTS["resonance_gain"],
        ge=0,
        description="Threshold lowering at resonance: ε_T = ε_T0 / (1 + g R).",
    )
    transform_threshold: float = Field(
        _DEFAULTS["transform_threshold"],
        gt=0,
        description="Off-resonance transformation threshold ε_T0, absorbed mJ/cm².",
    )
    transform_steepness: float = Field(
        0.08, gt=0, description="Sigmoid width of x(ε) relative to ε_T."
    )
    damage_threshold: float = Field(
        _DEFAULTS["damage_threshold"], gt=0, description="Damage threshold ε_D, absorbed mJ/cm²."
    )
    damage_slow_rate: float = Field(
        2e-4, ge=0, description="r_s: vacancy fraction per shot at ε = ε_D (sub-threshold)."
    )
    damage_slow_power: float = Field(4.0, gt=0, description="p: sub-threshold power law.")
    damage_fast_rate: float = Field(
        0.08, ge=0, description="r_f: vacancy fraction per shot per unit of (ε/ε_D − 1)."
    )
    mo_to_te_damage: float = Field(
        _DEFAULTS["mo_to_te_damage"], ge=0, description="m: Mo vacancy rate over Te rate."
    )
    melt_factor: float = Field(2.5, gt=1, description="Melting at ε ≥ f_melt · ε_D.")
    # dynamics
    tau_transform_ps: float = Field(2.0, gt=0, description="Rise time of x after time zero, ps.")
    tau_recovery_ps: float = Field(
        2000.0, gt=0, description="Decay of the transient 1T' fraction, ps."
    )
    tau_thermal_ps: float = Field(5.0, gt=0, description="Lattice heating time, ps.")
    tau_phonon_ps: float = Field(8.0, gt=0, description="Coherent phonon damping time, ps.")
    # heating and phonons
    heating_k_per_mj: float = Field(
        300.0, ge=0, description="c_T: lattice temperature rise per absorbed mJ/cm², K."
    )
    thermal_rms0: float = Field(0.06, ge=0, description="u_0: room-temperature rms, Å.")
    thermal_rms_k: float = Field(1.5e-5, ge=0, description="k_u: increase of u² per kelvin, Å²/K.")
    expansion_per_k: float = Field(1.0e-5, ge=0, description="α: in-plane thermal expansion, 1/K.")
    phonon_m_per_mj: float = Field(
        0.25, ge=0, description="s_M: M-mode amplitude per absorbed mJ/cm² at resonance, Å."
    )
    phonon_k_per_mj: float = Field(
        0.05, ge=0, description="s_K: K-mode amplitude per absorbed mJ/cm², Å."
    )
    phonon_m_mode: str = Field(
        _DEFAULTS["phonon_m_mode"], description="2H mode id driven at resonance."
    )
    phonon_k_mode: str = Field(
        _DEFAULTS["phonon_k_mode"], description="2H mode id driven off resonance."
    )

    @model_validator(mode="after")
    def _check_window(self) -> ResponseParams:
        best = self.transform_threshold / (1.0 + self.resonance_gain)
        if best >= self.damage_threshold:
            raise ValueError(
                f"transform_threshold/(1+resonance_gain) = {best:.3g} must lie below "
                f"damage_threshold = {self.damage_threshold:.3g}, or no safe window exists"
            )
        return self

    @classmethod
    def for_material(cls, material: str | Material | None = None, **overrides) -> ResponseParams:
        """The response with a material's defaults (``material.response``), then ``overrides``."""
        return cls(**{**get_material(material).response, **overrides})

    @classmethod
    def random(cls, seed: int, material: str | Material | None = None) -> ResponseParams:
        """A plausible random sample: resonance position/width and thresholds ±30 %.

        Parameters
        ----------
        seed : int
            Seed of the draw; the same seed gives the same sample.
        material : str or Material, optional
            Whose defaults the draw varies (default MoTe2).
        """
        rng = np.random.default_rng([seed, 0x5A3])
        base = cls.for_material(material)
        for _ in range(100):
            kw = {
                "resonance_ev": rng.uniform(1.3, 2.0),
                "resonance_width_ev": base.resonance_width_ev * rng.uniform(0.7, 1.3),
                "transform_threshold": base.transform_threshold * rng.uniform(0.7, 1.3),
                "damage_threshold": base.damage_threshold * rng.uniform(0.7, 1.3),
                "resonance_gain": base.resonance_gain * rng.uniform(0.7, 1.3),
            }
            try:
                return cls.for_material(material, **kw)
            except ValueError:
                continue
        raise RuntimeError("could not draw a sample with a safe window")  # pragma: no cover

    @classmethod
    def random_wide(cls, seed: int, material: str | Material | None = None) -> ResponseParams:
        """A sample of the wide family: every property of :data:`WIDE_RANGES` drawn.

        For benchmarks of the controller under model misspecification (issue 33): a real
        sample differs from the defaults in more than the resonance and the thresholds.
        Independent of :meth:`random` (its own random stream), deterministic per seed;
        draws without a safe window are redrawn.

        Parameters
        ----------
        seed : int
            Seed of the draw; the same seed gives the same sample.
        material : str or Material, optional
            Whose defaults the draw varies (default MoTe2).
        """
        rng = np.random.default_rng([seed, 0x71DE])
        base = cls.for_material(material)

        def draw(name: str, default: float) -> float:
            r = WIDE_RANGES[name]
            if r.kind == "uniform":
                return float(rng.uniform(r.low, r.high))
            if r.kind == "shift":
                return float(default + rng.uniform(r.low, r.high))
            u = float(np.exp(rng.uniform(np.log(r.low), np.log(r.high))))
            return default * u if r.kind == "factor" else 1.0 + (default - 1.0) * u

        for _ in range(100):
            kw: dict = {}
            for name in WIDE_RANGES:
                if name == "edge_ev":
                    continue
                default = getattr(base, name)
                if isinstance(default, tuple):
                    kw[name] = tuple(draw(name, d) for d in default)
                else:
                    kw[name] = draw(name, default)
            a_shift = kw["exciton_energies_ev"][0] - base.exciton_energies_ev[0]
            kw["edge_ev"] = base.edge_ev + a_shift
            kw["continuum"] = min(1.0, kw["continuum"])
            try:
                return cls.for_material(material, **kw)
            except ValueError:
                continue
        raise RuntimeError("could not draw a sample with a safe window")  # pragma: no cover

    # ------------------------------------------------------------------ physics
    def absorbance(self, wavelength_nm: float) -> float:
        """Fraction of pump photons absorbed at ``wavelength_nm``."""
        e = HC_EV_NM / wavelength_nm
        a = self.continuum * _sigmoid((e - self.edge_ev) / self.edge_width_ev)
        for ek, hk, wk in zip(
            self.exciton_energies_ev, self.exciton_heights, self.exciton_widths_ev, strict=True
        ):
            a += hk * np.exp(-((e - ek) ** 2) / (2 * wk**2))
        return float(a)

    def resonance(self, wavelength_nm: float) -> float:
        """Resonance factor R(E) in [0, 1]."""
        e = HC_EV_NM / wavelength_nm
        return float(np.exp(-((e - self.resonance_ev) ** 2) / (2 * self.resonance_width_ev**2)))

    def absorbed_fluence(self, fluence: float, wavelength_nm: float) -> float:
        """ε = F · A(λ), absorbed mJ/cm²."""
        return float(fluence * self.absorbance(wavelength_nm))

    def transform_threshold_at(self, wavelength_nm: float) -> float:
        """ε_T(λ) in absorbed mJ/cm²."""
        return self.transform_threshold / (
            1.0 + self.resonance_gain * self.resonance(wavelength_nm)
        )


@dataclass
class SpotState:
    """Irreversible state of one sample spot."""

    vacancy_te: float = 0.0
    vacancy_mo: float = 0.0
    molten: bool = False
    shots: int = 0
    dose: float = 0.0  # accumulated absorbed fluence, mJ/cm²

    @property
    def vacancy(self) -> float:
        """Site-averaged vacancy fraction (2 Te per Mo)."""
        return (2 * self.vacancy_te + self.vacancy_mo) / 3


@dataclass(frozen=True)
class ShotState:
    """The structure a probe pulse sees (what the detector renders)."""

    x: float
    vacancy_te: float
    vacancy_mo: float
    molten: bool
    thermal_rms: float
    strain: float
    phonon_amplitudes: dict[str, float] = field(default_factory=dict)
    absorbed_fluence: float = 0.0
    temperature_rise: float = 0.0

    @property
    def vacancy(self) -> float:
        """Site-averaged vacancy fraction."""
        return (2 * self.vacancy_te + self.vacancy_mo) / 3


def site_vacancy_state(
    x: float, site_vacancy: float, thermal_rms: float, mo_to_te: float = 0.4
) -> ShotState:
    """A probe's view of a spot with 1T' fraction ``x`` and site-averaged vacancy
    ``site_vacancy`` ((2 Te + Mo) / 3, with Mo = ``mo_to_te`` × Te as the damage model makes
    them), thermal rms ``thermal_rms`` Å, no strain (for scorer training and benchmarks)."""
    te = 3 * site_vacancy / (2 + mo_to_te)
    return ShotState(x, te, mo_to_te * te, False, thermal_rms, 0.0)


class SampleResponse:
    """The sample: a grid of spots with irreversible damage, driven by :class:`ResponseParams`.

    Parameters
    ----------
    params : ResponseParams
    n_spots : int
        Number of fresh spots on the sample.
    """

    def __init__(self, params: ResponseParams | None = None, n_spots: int = 100) -> None:
        if n_spots < 1:
            raise ValueError(f"n_spots={n_spots} must be >= 1")
        self.params = params or ResponseParams()
        self.spots = [SpotState() for _ in range(n_spots)]
        self.last_spot: int | None = None
        self.last_shot: ShotState | None = None

    def spot(self, index: int) -> SpotState:
        """State of spot ``index``; ``ValueError`` for an unknown spot."""
        if not 0 <= index < len(self.spots):
            raise ValueError(f"spot={index} is not on the sample; allowed 0…{len(self.spots) - 1}")
        return self.spots[index]

    def shot_state(
        self, spot: int, fluence: float, wavelength_nm: float, delay_ps: float, pumped: bool
    ) -> ShotState:
        """Structure seen by the probe for these settings, without changing the spot."""
        p = self.params
        s = self.spot(spot)
        eps = p.absorbed_fluence(fluence, wavelength_nm) if pumped else 0.0
        t = float(delay_ps)
        if eps > 0 and t >= 0:
            rise = 1.0 - np.exp(-t / p.tau_transform_ps)
            decay = np.exp(-t / p.tau_recovery_ps)
            eps_t = p.transform_threshold_at(wavelength_nm)
            x = _sigmoid((eps - eps_t) / (p.transform_steepness * eps_t)) * rise * decay
            d_temp = p.heating_k_per_mj * eps * (1.0 - np.exp(-t / p.tau_thermal_ps))
            ph = np.exp(-t / p.tau_phonon_ps)
            amps = {
                p.phonon_m_mode: min(
                    0.3, p.phonon_m_per_mj * eps * p.resonance(wavelength_nm) * ph
                ),
                p.phonon_k_mode: min(0.3, p.phonon_k_per_mj * eps * ph),
            }
        else:
            x, d_temp, amps = 0.0, 0.0, {}
        intact = max(0.0, 1.0 - s.vacancy / 0.2)  # a heavily damaged lattice cannot switch
        return ShotState(
            x=float(x * intact),
            vacancy_te=s.vacancy_te,
            vacancy_mo=s.vacancy_mo,
            molten=s.molten,
            thermal_rms=float(np.sqrt(p.thermal_rms0**2 + p.thermal_rms_k * d_temp)),
            strain=float(p.expansion_per_k * d_temp),
            phonon_amplitudes={k: float(v) for k, v in amps.items() if v > 1e-4},
            absorbed_fluence=float(eps),
            temperature_rise=float(d_temp),
        )

    def shoot(
        self, spot: int, fluence: float, wavelength_nm: float, delay_ps: float, pumped: bool
    ) -> ShotState:
        """One shot: the state the probe sees, then the (irreversible) damage of the pump.

        The probe sees the spot as it was before this pump pulse's damage (damage shows in the
        next shot). Without the pump (shutter closed) nothing changes.
        """
        state = self.shot_state(spot, fluence, wavelength_nm, delay_ps, pumped)
        self.last_spot, self.last_shot = spot, state
        s = self.spots[spot]
        s.shots += 1
        if pumped:
            p = self.params
            eps = state.absorbed_fluence
            ratio = eps / p.damage_threshold
            dv = p.damage_slow_rate * ratio**p.damage_slow_power + p.damage_fast_rate * max(
                0.0, ratio - 1.0
            )
            s.vacancy_te = min(1.0, s.vacancy_te + dv)
            s.vacancy_mo = min(1.0, s.vacancy_mo + p.mo_to_te_damage * dv)
            s.dose += eps
            if ratio >= p.melt_factor or s.vacancy >= 0.9:
                s.molten = True
        return state

    def truth(self, spot: int | None = None) -> dict:
        """Hidden truth of ``spot`` (default: the last one shot) and of its last shot.

        For benchmarks and tests only: a controller must never call this.
        """
        spot = (self.last_spot or 0) if spot is None else spot
        last = self.last_shot if spot == self.last_spot else None
        return truth_record(spot, self.spot(spot), last)


def truth_record(spot: int, state: SpotState, shot: ShotState | None) -> dict:
    """Hidden truth of a spot (and of the last shot on it) as a flat dict for benchmarks."""
    rec = {
        "spot": spot,
        "vacancy": state.vacancy,
        "vacancy_te": state.vacancy_te,
        "vacancy_mo": state.vacancy_mo,
        "molten": state.molten,
        "shots": state.shots,
        "dose": state.dose,
    }
    if shot is not None:
        rec.update(
            x=shot.x,
            thermal_rms=shot.thermal_rms,
            strain=shot.strain,
            absorbed_fluence=shot.absorbed_fluence,
            temperature_rise=shot.temperature_rise,
            phonon_amplitudes=dict(shot.phonon_amplitudes),
        )
    return rec
