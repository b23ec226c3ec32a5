"""Frame scoring models (CNN, C-VAE, random forests); class names shared with sim_devices."""

from uedsteer.sim_devices.classes import CLASSES, DAMAGE_CLASSES

__all__ = ["CLASSES", "DAMAGE_CLASSES"]
