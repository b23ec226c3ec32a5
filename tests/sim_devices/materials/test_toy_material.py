"""Adding a material is one module: a toy material defined and registered here runs through the
structure-factor simulation, the frame generator and the beamline renderer unchanged."""

import numpy as np
import pytest

from uedsteer.sim_devices.beamline import FrameRenderer
from uedsteer.sim_devices.frames import generate_frames
from uedsteer.sim_devices.materials import (
    INTERPOLATED,
    FrameClass,
    Material,
    PhaseCell,
    available_materials,
    get_material,
    register_material,
    unregister_material,
)
from uedsteer.sim_devices.physics import kinematic_intensity
from uedsteer.sim_devices.response import ResponseParams, ShotState

SMALL = {"base_size": (12, 8), "size_sigma": 0.0}
REF_A = FrameClass("ref_A", "A", "reference")


def toy_material(**changes) -> Material:
    """A 3-atom rectangular WSe2-like toy whose Se pair glides from phase A to phase B."""
    fields = dict(
        name="ToyWSe2",
        description="toy WSe2-like monolayer",
        symbols=("Se", "Se", "W"),
        phases=("A", "B"),
        cells={
            "A": PhaseCell([3.28, 5.68, 15.0], [[0, 0.67, 0.39], [0, 0.67, 0.61], [0, 0.33, 0.5]]),
            "B": PhaseCell([3.3, 5.9, 15.0], [[0.5, 0.55, 0.38], [0, 0.72, 0.62], [0, 0.36, 0.5]]),
        },
        classes=(
            FrameClass("ref_A", "A", "reference"),
            FrameClass("vacancy_A", "A", "vacancy", damage=True),
            FrameClass("deform_B", "B", "deform"),
            FrameClass("degraded", "A", "degraded", damage=True),
        ),
        vacancy_sites=("W", "Se"),
        response={"resonance_ev": 1.7},
    )
    return Material(**{**fields, **changes})


@pytest.fixture
def toy():
    material = register_material(toy_material())
    yield material
    unregister_material(material.name)


def test_registered_by_name(toy):
    assert get_material("ToyWSe2") is toy and "ToyWSe2" in available_materials()
    assert toy.class_names == ("ref_A", "vacancy_A", "deform_B", "degraded")
    assert toy.damage_classes == (1, 3) and toy.labels[-1] == INTERPOLATED
    with pytest.raises(ValueError, match="already registered"):
        register_material(toy_material())


def test_toy_structures_scatter(toy, grid):
    atoms = toy.supercell("A", (10, 6), x=0.4)
    assert len(atoms) == 180 and sorted(set(atoms.get_chemical_symbols())) == ["Se", "W"]
    intensity = kinematic_intensity(atoms, grid)
    assert intensity.shape == (grid.n, grid.n) and np.isfinite(intensity).all()
    assert intensity.max() > 0


def test_every_toy_label_yields_frames(toy):
    frames = {}
    for label in toy.labels:
        kw = {"x": 0.5} if label == INTERPOLATED else {}
        f, params = generate_frames(label, 2, seed=5, material="ToyWSe2", **kw, **SMALL)
        assert f.shape == (2, 261, 261) and f.dtype == np.float32
        assert np.isfinite(f).all() and f.sum() > 0  # readout noise may dip below 0
        assert all(p["label"] == label for p in params)
        frames[label] = f
    _, params = generate_frames("deform_B", 1, seed=5, material=toy, **SMALL)
    assert params[0]["phase"] == "B" and params[0]["x"] == 1.0
    again, _ = generate_frames("vacancy_A", 2, seed=5, material=toy, **SMALL)
    assert np.array_equal(again, frames["vacancy_A"]), "same seed, same frames"
    assert not np.array_equal(frames["ref_A"], frames["vacancy_A"])


def test_toy_renders_on_the_beamline(toy):
    renderer = FrameRenderer(supercell=(12, 8), material="ToyWSe2")
    state = ShotState(0.3, 0.05, 0.02, False, 0.06, 0.01)
    frame = renderer.render(state, 20.0, np.random.default_rng(0))
    assert frame.shape == (261, 261) and np.isfinite(frame).all()
    assert ResponseParams.for_material(toy).resonance_ev == 1.7


def test_mote2_names_are_not_the_toys(toy):
    with pytest.raises(ValueError, match="label="):
        generate_frames("ref_2H", 1, material=toy, **SMALL)
    with pytest.raises(ValueError, match="phonon table"):
        toy.modes("A")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"phases": ("A", "A")}, "phases="),
        ({"symbols": ("Se", "W")}, "atoms"),
        ({"symbols": ("Se", "Se", "Xq")}, "chemical elements"),
        ({"vacancy_sites": ("Mo", "Se")}, "vacancy_sites"),
        ({"classes": (FrameClass("ref_A", "A", "reference"),) * 2}, "unique"),
        ({"classes": (FrameClass("vacancy_A", "A", "vacancy"),)}, "reference"),
        ({"classes": (FrameClass("ref_C", "C", "reference"),)}, "phase"),
        ({"classes": (REF_A, FrameClass("phonon_A", "A", "phonon"))}, "phonon"),
    ],
)
def test_an_inconsistent_material_is_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        toy_material(**changes)


def test_frame_class_and_cell_validation():
    with pytest.raises(ValueError, match="kind="):
        FrameClass("x", "A", "melted")
    with pytest.raises(ValueError, match="interpolated"):
        FrameClass(INTERPOLATED, "A", "reference")
    with pytest.raises(ValueError, match="lengths="):
        PhaseCell([1.0, -1.0, 1.0], [[0, 0, 0]])
    with pytest.raises(ValueError, match="not known"):
        get_material("NoSuchMaterial")
