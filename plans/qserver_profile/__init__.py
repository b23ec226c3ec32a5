"""uedsteer's bluesky-queueserver profile: the startup module and the files beside it.

``start-re-manager --startup-module uedsteer.plans.qserver_profile.startup`` opens an RE Worker
environment with a RunEngine writing to uedsteer's catalog, the beamline's devices, the shipped
frame scorer and the campaign plans as queue items (:mod:`.namespace` builds it, from the
environment variables it lists). Beside the module, as package data:

``user_group_permissions.yaml``
    Who may run what (``--user-group-permissions``).
``existing_plans_and_devices.yaml``
    The plans and devices of the profile as ``qserver-list-plans-devices`` writes them for the
    simulated beamline (``--existing-plans-devices``); a test regenerates it and fails when it
    differs. The RE Manager rewrites the file it is given whenever it opens the environment,
    so give it a copy (:func:`uedsteer.plans.qserver_manager.REManager` does).
"""

from pathlib import Path

__all__ = [
    "EXISTING_PLANS_AND_DEVICES",
    "PROFILE_FOLDER",
    "STARTUP_MODULE",
    "USER_GROUP_PERMISSIONS",
]

PROFILE_FOLDER = Path(__file__).resolve().parent
"""The folder of the profile's files."""

STARTUP_MODULE = "uedsteer.plans.qserver_profile.startup"
"""The name to give ``start-re-manager --startup-module``."""

USER_GROUP_PERMISSIONS = PROFILE_FOLDER / "user_group_permissions.yaml"
"""The user-group permissions file."""

EXISTING_PLANS_AND_DEVICES = PROFILE_FOLDER / "existing_plans_and_devices.yaml"
"""The committed list of the profile's plans and devices."""
