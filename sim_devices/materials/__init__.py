"""Materials the simulated beamline renders and the scorer is trained on, one module each.

A material (:class:`Material`) is one module that builds a ``Material`` value and registers it
here; everything MoTe2-specific lives in :mod:`.mote2`. Look materials up by name with
:func:`get_material`; :func:`default_material` is MoTe2. ``docs/howto/add-a-material.md``
walks through adding one.
"""

from __future__ import annotations

from .material import INTERPOLATED, KINDS, FrameClass, Material, PhaseCell
from .mote2 import MOTE2

DEFAULT_MATERIAL = "MoTe2"
"""Name of the material used where none is given."""

_REGISTRY: dict[str, Material] = {}


def register_material(material: Material, *, replace: bool = False) -> Material:
    """Make ``material`` known to :func:`get_material` under its name.

    Parameters
    ----------
    material : Material
    replace : bool
        Allow replacing a material already registered under the same name.

    Raises
    ------
    ValueError
        If another material has that name and ``replace`` is false.
    """
    if not isinstance(material, Material):
        raise TypeError(f"register_material needs a Material, got {type(material).__name__}")
    known = _REGISTRY.get(material.name)
    if known is not None and known is not material and not replace:
        raise ValueError(f"a material named {material.name!r} is already registered")
    _REGISTRY[material.name] = material
    return material


def unregister_material(name: str) -> None:
    """Forget a registered material (the default material cannot be removed)."""
    if name == DEFAULT_MATERIAL:
        raise ValueError(f"the default material {DEFAULT_MATERIAL!r} cannot be unregistered")
    _REGISTRY.pop(name, None)


def get_material(material: str | Material | None = None) -> Material:
    """The material of a name (a :class:`Material` is returned as it is; None: the default).

    Raises
    ------
    ValueError
        If no material of that name is registered.
    """
    if material is None:
        material = DEFAULT_MATERIAL
    if isinstance(material, Material):
        return material
    try:
        return _REGISTRY[material]
    except (KeyError, TypeError):
        raise ValueError(
            f"material={material!r} is not known; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def default_material() -> Material:
    """The default material (MoTe2)."""
    return _REGISTRY[DEFAULT_MATERIAL]


def available_materials() -> tuple[str, ...]:
    """Names of the registered materials."""
    return tuple(sorted(_REGISTRY))


register_material(MOTE2)

__all__ = [
    "DEFAULT_MATERIAL",
    "INTERPOLATED",
    "KINDS",
    "MOTE2",
    "FrameClass",
    "Material",
    "PhaseCell",
    "available_materials",
    "default_material",
    "get_material",
    "register_material",
    "unregister_material",
]
