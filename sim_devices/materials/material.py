"""What the simulator, the data generator and the scorer need to know about a material.

A :class:`Material` is a frozen, validated value: the two phases of its transformation path and
their matched unit cells, the phonon table it ships, the frame classes a scorer tells apart
(with which of them mean damage), and the material-specific defaults of the simulated sample's
response. The physics it uses (:mod:`uedsteer.sim_devices.physics`) is generic; a material
only supplies numbers and names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from ..physics.phonons import ModeTable, read_mode_table
from ..physics.structures import add_phonon_displacement, path_cell, supercell

INTERPOLATED = "interpolated"
"""Label of frames along the transformation path (VAE training), not a scorer class."""

KINDS = ("reference", "vacancy", "deform", "phonon", "degraded")
"""What the frame generator does to a class's structure (see :class:`FrameClass`)."""


@dataclass(frozen=True)
class FrameClass:
    """One structural class a scorer tells apart, and how the generator makes its frames.

    Parameters
    ----------
    name : str
        Class name, e.g. ``"vacancy_2H"``.
    phase : str
        Phase the frame's structure is in (one end of the material's path).
    kind : {"reference", "vacancy", "deform", "phonon", "degraded"}
        The generator's perturbation: none, site vacancies, strain, a frozen phonon, or
        degradation (most sites vacant, the rest disordered).
    damage : bool
        Whether the class means sample damage (its probability counts in ``damage_prob``).
    """

    name: str
    phase: str
    kind: str
    damage: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name == INTERPOLATED:
            raise ValueError(f"class name {self.name!r} must be non-empty and not {INTERPOLATED!r}")
        if self.kind not in KINDS:
            raise ValueError(f"class {self.name!r}: kind={self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class PhaseCell:
    """The orthorhombic unit cell of one phase.

    Parameters
    ----------
    lengths : array_like, shape (3,)
        Cell lengths a, b, c in Å (c includes the vacuum of a monolayer).
    fractional : array_like, shape (n, 3)
        Unwrapped fractional positions of the basis atoms, in the material's symbol order.
    """

    lengths: np.ndarray
    fractional: np.ndarray

    def __post_init__(self) -> None:
        lengths = np.array(self.lengths, dtype=float)
        frac = np.array(self.fractional, dtype=float)
        if lengths.shape != (3,) or not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
            raise ValueError(f"lengths={lengths.tolist()} must be three positive numbers")
        if frac.ndim != 2 or frac.shape[1] != 3 or not np.all(np.isfinite(frac)):
            raise ValueError(f"fractional positions must be a finite (n, 3) array: {frac.shape}")
        lengths.flags.writeable = False
        frac.flags.writeable = False
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "fractional", frac)


@dataclass(frozen=True, eq=False)
class Material:
    """A material the simulator can render and a scorer can be trained on.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"MoTe2"``.
    description : str
        One line for run metadata and messages (e.g. ``"MoTe2 monolayer"``).
    symbols : sequence of str
        Species of the unit cell's basis atoms, in order.
    phases : (str, str)
        Start and end of the transformation path (x = 0 and x = 1), e.g. ``("2H", "1T'")``.
    cells : mapping of str to PhaseCell
        The unit cell of each phase, matched atom for atom.
    classes : sequence of FrameClass
        The scorer's classes, in output order.
    vacancy_sites : (str, str)
        The two species whose vacancy fractions the generator draws independently (the data
        set's ``mo_vacancy`` and ``te_vacancy`` columns, in this order).
    phonon_table : str or None
        Package-data path of the phonon table (``.npz``) inside ``phonon_package``; None if the
        material ships none (then it can have no ``phonon`` classes).
    phonon_keys : mapping of str to str
        Key prefix of each phase in the table (default: the phase name).
    phonon_package : str
        Package holding ``phonon_table``.
    aliases : mapping of str to str
        Other spellings of phase names (e.g. ``"1Tp"`` for ``"1T'"``).
    response : mapping of str to Any
        Material-specific defaults of the simulated sample's response
        (fields of :class:`uedsteer.sim_devices.response.ResponseParams`).
    """

    name: str
    description: str
    symbols: tuple[str, ...]
    phases: tuple[str, str]
    cells: Mapping[str, PhaseCell]
    classes: tuple[FrameClass, ...]
    vacancy_sites: tuple[str, str]
    phonon_table: str | None = None
    phonon_keys: Mapping[str, str] = field(default_factory=dict)
    phonon_package: str = "uedsteer.sim_devices.materials"
    aliases: Mapping[str, str] = field(default_factory=dict)
    response: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("symbols", tuple(self.symbols))
        set_("phases", tuple(self.phases))
        set_("classes", tuple(self.classes))
        set_("vacancy_sites", tuple(self.vacancy_sites))
        for name in ("cells", "phonon_keys", "aliases", "response"):
            set_(name, MappingProxyType(dict(getattr(self, name))))
        if not self.name:
            raise ValueError("a material needs a name")
        unknown = [s for s in (*self.symbols, *self.vacancy_sites) if s not in atomic_numbers]
        if unknown:
            raise ValueError(f"{self.name}: {unknown} are not chemical elements")
        if len(self.phases) != 2 or len(set(self.phases)) != 2:
            raise ValueError(f"{self.name}: phases={self.phases} must be two different names")
        if set(self.cells) != set(self.phases):
            raise ValueError(f"{self.name}: cells for {sorted(self.cells)}, phases {self.phases}")
        for phase, cell in self.cells.items():
            if cell.fractional.shape[0] != len(self.symbols):
                raise ValueError(
                    f"{self.name}: the {phase} cell has {cell.fractional.shape[0]} atoms, "
                    f"symbols name {len(self.symbols)}"
                )
        if len(self.vacancy_sites) != 2 or not set(self.vacancy_sites) <= set(self.symbols):
            raise ValueError(f"{self.name}: vacancy_sites must be two of {self.symbols}")
        self._check_classes()

    def _check_classes(self) -> None:
        names = [c.name for c in self.classes]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{self.name}: class names {names} must be non-empty and unique")
        for c in self.classes:
            if c.phase not in self.phases:
                raise ValueError(f"{self.name}: class {c.name!r} has phase {c.phase!r}")
            if c.kind == "phonon" and self.phonon_table is None:
                raise ValueError(f"{self.name}: class {c.name!r} needs a phonon table")
        if [c.kind for c in self.classes].count("reference") < 1:
            raise ValueError(f"{self.name}: one class must be the pristine reference")

    # ---------------------------------------------------------------- names
    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in scorer output order."""
        return tuple(c.name for c in self.classes)

    @property
    def damage_classes(self) -> tuple[int, ...]:
        """Indices of the classes that mean sample damage."""
        return tuple(k for k, c in enumerate(self.classes) if c.damage)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label the frame generator understands: the classes, then ``interpolated``."""
        return (*self.class_names, INTERPOLATED)

    @property
    def reference_class(self) -> str:
        """Name of the pristine class of the path's start phase (difference-image reference)."""
        return next(
            c.name for c in self.classes if c.kind == "reference" and c.phase == self.phases[0]
        )

    def frame_class(self, label: str) -> FrameClass:
        """The class called ``label``.

        Raises
        ------
        ValueError
            If the material has no such class.
        """
        for c in self.classes:
            if c.name == label:
                return c
        raise ValueError(f"label={label!r} is not a class of {self.name}: {self.class_names}")

    def classes_of(self, kind: str, phase: str | None = None) -> tuple[str, ...]:
        """Names of the classes of one kind (and phase, if given), in class order."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not one of {KINDS}")
        phase = None if phase is None else self.canonical_phase(phase)
        return tuple(c.name for c in self.classes if c.kind == kind and phase in (None, c.phase))

    def canonical_phase(self, phase: str) -> str:
        """The phase name for a phase name or alias (``"1Tp"`` → ``"1T'"``).

        Raises
        ------
        ValueError
            If the phase is not one of the material's phases.
        """
        if isinstance(phase, str) and phase in self.phases:
            return phase
        try:
            return self.aliases[phase]
        except (KeyError, TypeError):
            allowed = ", ".join(repr(p) for p in self.phases)
            raise ValueError(
                f"phase={phase!r} is not known for {self.name}; allowed: {allowed}"
            ) from None

    # ---------------------------------------------------------------- structures
    def fractional(self, phase: str) -> np.ndarray:
        """Unwrapped fractional positions (n, 3) of the basis atoms of ``phase``."""
        return self.cells[self.canonical_phase(phase)].fractional

    def cell(self, phase: str | None = None, x: float = 0.0) -> Atoms:
        """The unit cell a fraction ``x`` of the way from ``phase`` towards the other phase.

        Parameters
        ----------
        phase : str, optional
            Starting phase (an alias is accepted); default the path's start.
        x : float
            Fraction in [0, 1] along the linear path: ``cell(phases[0], 0.3)`` is 30 %
            transformed; ``cell(phases[1], 0)`` equals ``cell(phases[0], 1)``.

        Returns
        -------
        ase.Atoms
            See :func:`uedsteer.sim_devices.physics.path_cell`; ``info["phase"]`` is the
            starting phase and ``info["path_fraction"]`` the fraction of the end phase.

        Raises
        ------
        ValueError
            Unknown phase or ``x`` outside [0, 1].
        """
        phase = self.canonical_phase(self.phases[0] if phase is None else phase)
        x = float(x)
        if not np.isfinite(x) or x < 0.0 or x > 1.0:
            raise ValueError(f"x={x} is outside the allowed range [0, 1]")
        t = x if phase == self.phases[0] else 1.0 - x
        start, end = (self.cells[p] for p in self.phases)
        atoms = path_cell(
            self.symbols, (start.lengths, start.fractional), (end.lengths, end.fractional), t
        )
        atoms.info["phase"] = phase
        return atoms

    def supercell(
        self, phase: str | None = None, size: Sequence[int] = (51, 30), x: float = 0.0
    ) -> Atoms:
        """A rectangular supercell of :meth:`cell` (``size`` repetitions along a and b)."""
        return supercell(self.cell(phase, x), size)

    # ---------------------------------------------------------------- phonons
    def modes(self, phase: str) -> ModeTable:
        """The shipped phonon-mode table of ``phase``.

        Raises
        ------
        ValueError
            If the material ships no phonon table.
        FileNotFoundError
            If its package data is missing.
        """
        phase = self.canonical_phase(phase)
        if self.phonon_table is None:
            raise ValueError(f"{self.name} ships no phonon table")
        key = self.phonon_keys.get(phase, phase)
        return read_mode_table(self.phonon_package, self.phonon_table, key, phase)

    def mode_ids(self) -> list[str]:
        """Every phonon mode id of both phases, ``"<phase>/<q>:<band>"``."""
        return [f"{p}/{m}" for p in self.phases for m in self.modes(p).mode_ids()]

    def add_phonon(
        self, atoms: Atoms, mode: str, amplitude: float, rng: np.random.Generator
    ) -> Atoms:
        """Displace a supercell of a pure phase along one of its phonon modes.

        Parameters
        ----------
        atoms : ase.Atoms
            A structure from :meth:`supercell` at either end of the path.
        mode, amplitude, rng
            See :func:`uedsteer.sim_devices.physics.add_phonon_displacement`.
        """
        phase = atoms.info.get("phase", self.phases[0])
        t = atoms.info.get("path_fraction", 0.0 if phase == self.phases[0] else 1.0)
        if t not in (0.0, 1.0):
            raise ValueError(
                f"phonon modes exist for pure {' or '.join(self.phases)} only, not a structure "
                f"{t} of the way along the path"
            )
        end = self.phases[0] if t == 0.0 else self.phases[1]
        return add_phonon_displacement(
            atoms, self.modes(end), mode, amplitude, rng, self.cells[end].fractional
        )
