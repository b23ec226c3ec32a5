"""Compute a material's phonon-mode table with phonopy and CHGNet (``uedsteer phonons``).

Both phases use the material's matched orthorhombic cells (for MoTe2 the 6-atom cells of
:mod:`uedsteer.sim_devices.materials.mote2`). Atomic positions are relaxed at fixed cell
with CHGNet (BFGS), force constants come from finite displacements in a supercell (default
6 × 6 × 1, so that both M = (½, ½) and K = (⅔, 0) are commensurate), and eigenvectors are
evaluated at Γ, M and K. The result is the material's package data, read by
:meth:`uedsteer.sim_devices.materials.Material.modes`; CHGNet (extra ``phonons``) is needed
only here.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from .materials import Material, get_material

THZ_TO_CM1 = 33.35641
QPOINTS = {"Gamma": (0.0, 0.0, 0.0), "M": (0.5, 0.5, 0.0), "K": (2 / 3, 0.0, 0.0)}


def compute_phonon_table(
    out: Path,
    supercell: tuple[int, int, int] = (6, 6, 1),
    displacement: float = 0.01,
    fmax: float = 1e-3,
    material: str | Material | None = None,
) -> dict:
    """Relax, compute force constants and write the mode table.

    Parameters
    ----------
    out : pathlib.Path
        Destination ``.npz``.
    supercell : (int, int, int)
        phonopy supercell of the 6-atom cell.
    displacement : float
        Finite displacement in Å.
    fmax : float
        Force convergence of the fixed-cell relaxation in eV/Å.
    material : str or Material, optional
        The material (default MoTe2).

    Returns
    -------
    dict
        Summary: frequency ranges per phase and q-point in cm⁻¹.
    """
    try:
        import chgnet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as err:  # pragma: no cover - depends on the optional extra
        raise SystemExit(
            "`uedsteer phonons` needs CHGNet: pip install 'uedsteer[phonons]'"
        ) from err
    import phonopy
    from ase.optimize import BFGS
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms
    from tqdm import tqdm

    material = get_material(material)
    calc = CHGNetCalculator(use_device="cpu", check_cuda_mem=False)
    arrays: dict[str, np.ndarray] = {}
    summary: dict = {}
    n_modes = 3 * len(material.symbols)
    for phase in material.phases:
        key = material.phonon_keys.get(phase, phase)
        atoms = material.cell(phase)
        atoms.pbc = True
        atoms.calc = calc
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=500)
        unit = PhonopyAtoms(
            symbols=atoms.get_chemical_symbols(),
            cell=np.asarray(atoms.cell),
            scaled_positions=atoms.get_scaled_positions(wrap=False),
        )
        ph = Phonopy(unit, supercell_matrix=np.diag(supercell), primitive_matrix=np.eye(3))
        ph.generate_displacements(distance=displacement)
        forces = []
        for sc in tqdm(ph.supercells_with_displacements, desc=f"{phase} displacements"):
            from ase import Atoms

            sc_atoms = Atoms(
                symbols=sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True
            )
            sc_atoms.calc = calc
            forces.append(sc_atoms.get_forces())
        ph.forces = np.asarray(forces)
        ph.produce_force_constants()
        ph.symmetrize_force_constants()
        labels = list(QPOINTS)
        ph.run_qpoints([QPOINTS[k] for k in labels], with_eigenvectors=True)
        qdict = ph.get_qpoints_dict()
        freqs = np.asarray(qdict["frequencies"]) * THZ_TO_CM1  # (nq, 3n)
        evecs = np.asarray(qdict["eigenvectors"])  # (nq, 3n, 3n): [component, band]
        evecs = np.transpose(evecs, (0, 2, 1)).reshape(
            len(labels), n_modes, len(material.symbols), 3
        )
        arrays[f"{key}_qpoints"] = np.array([QPOINTS[k] for k in labels])
        arrays[f"{key}_qlabels"] = np.array(labels)
        arrays[f"{key}_frequencies_cm1"] = freqs
        arrays[f"{key}_eigenvectors"] = evecs.astype(np.complex128)
        arrays[f"{key}_relaxed_fractional"] = atoms.get_scaled_positions(wrap=False)
        summary[phase] = {
            lab: [round(float(freqs[i].min()), 1), round(float(freqs[i].max()), 1)]
            for i, lab in enumerate(labels)
        }
    settings = {
        "command": "uedsteer phonons",
        "calculator": f"CHGNet {chgnet.__version__} (pretrained weights shipped with chgnet)",
        "phonopy": phonopy.__version__,
        "supercell": list(supercell),
        "displacement_angstrom": displacement,
        "relaxation": f"fixed cell, BFGS, fmax={fmax} eV/Å",
        "qpoints_reduced": QPOINTS,
        "frequency_ranges_cm1": summary,
    }
    arrays["settings"] = np.array(json.dumps(settings))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return summary


def default_output(material: str | Material | None = None) -> Path:
    """Where the material's package data lives in this source tree."""
    material = get_material(material)
    if material.phonon_table is None:
        raise ValueError(f"{material.name} names no phonon table file")
    return Path(str(resources.files(material.phonon_package) / material.phonon_table))
