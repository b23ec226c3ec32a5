"""MoTe2 monolayer: the 2H → 1T' transformation of the ML-UED seed.

Cells
-----
Both polytypes use the same 6-atom orthorhombic (rectangular) cell, matched atom for atom, so
the 2H → 1T' path is a linear interpolation of cell and fractional positions (``x`` ∈ [0, 1]).

* **1T'** is the seed's cell: a = 3.5287 Å, b = 6.2728 Å, c = 15.4 Å (vacuum).
* **2H** is the *ideal hexagonal* trigonal-prismatic monolayer in the rectangular setting:
  a = 3.5128 Å (the seed's a), b = √3·a = 6.0843 Å, Mo on the B sites (0, 1/3), (½, 5/6), both
  Te layers on the C sites (0, 2/3), (½, 1/6), with the seed's atomic heights (Te–Te 3.61 Å).
  The seed's own "2H" cell (b = 6.2445 Å, b/a = 1.778 instead of √3 = 1.732, x offsets of
  0.0051) is not hexagonal, so its pattern has no 6-fold symmetry and its first ring is not at
  2/(√3·a). It is kept as ``SEED_2H_FRACTIONAL``/``SEED_2H_CELL`` for reference only.
* The top Te layer glides by (+½, ≈ −0.14) in fractional units along the path (2H C site →
  1T' A site, |Δ| = a/√3 ≈ 2.0 Å); both top-Te atoms glide the same way (atom 4's 1T' x is
  written as 1.0051 ≡ 0.0051), so intermediate structures are a uniform layer glide.

Phonons
-------
``data/mote2_phonons.npz``, written by ``uedsteer phonons`` (phonopy + CHGNet on these cells):
Γ, M = (½, ½, 0) and K = (⅔, 0, 0) in the rectangular setting (named after the hexagonal
parent), phase keys ``2H`` and ``1Tp``.

Classes
-------
The ML-UED seed's CNN classes in its order (0 ``ref_2H`` … 6 ``phonon_1Tp``) plus 7
``degraded``; the damage classes are 1 ``vacancy_2H``, 4 ``vacancy_1Tp`` and 7 ``degraded``.
"""

from __future__ import annotations

import numpy as np

from .material import FrameClass, Material, PhaseCell

C_VACUUM = 15.4
SYMBOLS = ("Te", "Te", "Te", "Te", "Mo", "Mo")

_A_2H = 3.5128
CELL_2H = np.array([_A_2H, np.sqrt(3.0) * _A_2H, C_VACUUM])
FRAC_2H = np.array(
    [
        [0.0, 2 / 3, 0.13122],
        [0.0, 2 / 3, 0.36552],
        [0.5, 1 / 6, 0.13122],
        [0.5, 1 / 6, 0.36552],
        [0.0, 1 / 3, 0.24837],
        [0.5, 5 / 6, 0.24837],
    ]
)
CELL_1TP = np.array([3.5287, 6.2728, C_VACUUM])
FRAC_1TP = np.array(
    [
        [0.00510, 0.63916, 0.11423],
        [0.5, 0.50917, 0.38251],
        [0.5, 0.12886, 0.15301],
        [1.00510, 0.01948, 0.34374],  # ≡ 0.0051: same glide direction as atom 2
        [0.00510, 0.39101, 0.25492],
        [0.5, 0.75733, 0.24182],
    ]
)
SEED_2H_CELL = np.array([3.5128, 6.2445, C_VACUUM])
SEED_2H_FRACTIONAL = np.array(
    [
        [0.0, 0.65619, 0.13122],
        [0.0, 0.65619, 0.36552],
        [0.50510, 0.14833, 0.13122],
        [0.50510, 0.14833, 0.36552],
        [0.0, 0.32810, 0.24837],
        [0.50510, 0.82024, 0.24837],
    ]
)

MOTE2 = Material(
    name="MoTe2",
    description="MoTe2 monolayer",
    symbols=SYMBOLS,
    phases=("2H", "1T'"),
    cells={"2H": PhaseCell(CELL_2H, FRAC_2H), "1T'": PhaseCell(CELL_1TP, FRAC_1TP)},
    classes=(
        FrameClass("ref_2H", "2H", "reference"),
        FrameClass("vacancy_2H", "2H", "vacancy", damage=True),
        FrameClass("deform_2H", "2H", "deform"),
        FrameClass("phonon_2H", "2H", "phonon"),
        FrameClass("vacancy_1Tp", "1T'", "vacancy", damage=True),
        FrameClass("deform_1Tp", "1T'", "deform"),
        FrameClass("phonon_1Tp", "1T'", "phonon"),
        FrameClass("degraded", "2H", "degraded", damage=True),
    ),
    vacancy_sites=("Mo", "Te"),
    phonon_table="data/mote2_phonons.npz",
    phonon_keys={"2H": "2H", "1T'": "1Tp"},
    aliases={"2h": "2H", "1Tp": "1T'", "1tp": "1T'", "1T_prime": "1T'"},
    response={
        # absorption: the A, B, C excitons and the band edge of monolayer MoTe2
        "exciton_energies_ev": (1.10, 1.35, 2.30),
        "exciton_heights": (0.10, 0.08, 0.18),
        "exciton_widths_ev": (0.04, 0.05, 0.20),
        "edge_ev": 1.05,
        "edge_width_ev": 0.05,
        "continuum": 0.05,
        # photon-energy-selective excitation of the M-point modes that drive 2H → 1T'
        "resonance_ev": 1.55,
        "resonance_width_ev": 0.08,
        "resonance_gain": 3.0,
        "transform_threshold": 0.60,
        "damage_threshold": 0.45,
        # Te sublimates first
        "mo_to_te_damage": 0.4,
        "phonon_m_mode": "M:10",
        "phonon_k_mode": "K:8",
    },
)
"""The MoTe2 monolayer material (the package's default)."""
