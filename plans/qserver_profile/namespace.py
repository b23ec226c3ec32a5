"""The namespace of uedsteer's queueserver profile, built from environment variables.

The RE Manager's worker imports :mod:`uedsteer.plans.qserver_profile.startup`, whose globals
become the namespace the queue's plans run in; :func:`profile_namespace` builds them. What it
reads (set these in the environment of ``start-re-manager``):

===========================  ==================================================================
variable                     meaning
===========================  ==================================================================
``UEDSTEER_CATALOG``         The catalog the RunEngine writes to: a Tiled server's address
                             (``http://127.0.0.1:8000/api/v1``) or a catalog folder
                             (default ``uedsteer_catalog`` in the working folder).
``TILED_API_KEY``            The key of a Tiled server that asks for one.
``UEDSTEER_JOURNAL``         The journal folder for a served catalog
                             (:data:`uedsteer.plans.catalog.JOURNAL_ENV`).
``UEDSTEER_EPICS_PREFIX``    The EPICS beamline's PV prefix (``UED:``): an
                             :class:`~uedsteer.sim_devices.epics_beamline.EpicsBeamline`.
``UEDSTEER_EPICS_PV_MAP``    Or the path of its YAML PV map (:meth:`EpicsBeamline.from_yaml`).
``UEDSTEER_SIM_SEED``        Neither set: the simulated beamline in the worker, with this seed
                             (default 0), for tests and demonstrations.
===========================  ==================================================================

The namespace: ``RE`` (a RunEngine whose documents go durably to the catalog,
:func:`uedsteer.plans.catalog.subscribe`, with scan ids counted on from the catalog's newest
run), ``db`` (the catalog), ``bl`` (the beamline), the beamline's devices under their names
(``det``, ``pump``, ``gun``, ``delay``, ``stage``), ``scorer`` (the shipped
:class:`~uedsteer.surrogates.scorer.FrameScorer`, by name ``pretrained`` in the plans), ``bec``
(bluesky's table of each event in the RE Manager's console) and the queue plans
``uedsteer_campaign`` and ``uedsteer_resume`` (:mod:`uedsteer.plans.queue_plans`). The thread
budget (:func:`~uedsteer.surrogates.threads.apply_thread_budget`) is applied before anything
else computes. Opening the environment closes the pump shutter: an RE Worker that was killed
mid-shot could close nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CATALOG_ENV",
    "DEFAULT_CATALOG",
    "EPICS_PREFIX_ENV",
    "EPICS_PV_MAP_ENV",
    "SCORER_NAME",
    "SIM_SEED_ENV",
    "make_beamline",
    "profile_namespace",
]

CATALOG_ENV = "UEDSTEER_CATALOG"
EPICS_PREFIX_ENV = "UEDSTEER_EPICS_PREFIX"
EPICS_PV_MAP_ENV = "UEDSTEER_EPICS_PV_MAP"
SIM_SEED_ENV = "UEDSTEER_SIM_SEED"
DEFAULT_CATALOG = "uedsteer_catalog"
SCORER_NAME = "pretrained"
"""The name queue items give the shipped scorer (``FrameScorer.pretrained()``)."""


def make_beamline(environ: Mapping[str, str] | None = None) -> Any:
    """The beamline the environment names: EPICS by prefix or PV map, else simulated.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    EpicsBeamline or SimulatedBeamline

    Raises
    ------
    ValueError
        One line: both EPICS variables set, a seed that is not a whole number, a bad PV map.
    TimeoutError
        The EPICS PVs do not answer.
    """
    env = os.environ if environ is None else environ
    prefix, pv_map = env.get(EPICS_PREFIX_ENV, ""), env.get(EPICS_PV_MAP_ENV, "")
    if prefix and pv_map:
        raise ValueError(
            f"{EPICS_PREFIX_ENV}={prefix!r} and {EPICS_PV_MAP_ENV}={pv_map!r}: set one (the PV "
            "map holds its own prefix)"
        )
    if prefix or pv_map:
        from uedsteer.sim_devices.epics_beamline import EpicsBeamline

        return EpicsBeamline.from_yaml(pv_map) if pv_map else EpicsBeamline(prefix)
    raw = env.get(SIM_SEED_ENV, "0")
    try:
        seed = int(raw)
    except ValueError:
        raise ValueError(f"{SIM_SEED_ENV}={raw!r} is not a whole number") from None
    from uedsteer.sim_devices.beamline import SimulatedBeamline

    return SimulatedBeamline(seed=seed)


def profile_namespace(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the profile's namespace (module docstring) from the environment.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    dict
        Name → object, for the startup module's globals.

    Raises
    ------
    ValueError
        One line: a catalog that cannot be opened, a bad beamline variable.
    """
    from uedsteer.surrogates.threads import apply_thread_budget

    apply_thread_budget()  # before the RunEngine's thread and the scorer compute anything
    from bluesky import RunEngine
    from bluesky.callbacks.best_effort import BestEffortCallback

    from uedsteer.plans.catalog import open_catalog, scan_id_source, subscribe
    from uedsteer.plans.queue_plans import DEVICE_ROLES, queue_plans
    from uedsteer.surrogates.scorer import FrameScorer

    env = os.environ if environ is None else environ
    db = open_catalog(env.get(CATALOG_ENV) or DEFAULT_CATALOG)
    RE = RunEngine({}, scan_id_source=scan_id_source(db))
    subscribe(RE, db)
    bec = BestEffortCallback()
    bec.disable_plots()
    RE.subscribe(bec)
    bl = make_beamline(env)
    # A worker that died mid-shot left the shutter as it was: closed before any plan runs.
    bl.shutter.set("closed").wait(30)
    devices = dict(
        zip(DEVICE_ROLES, (bl.detector, bl.pump, bl.gun, bl.delay, bl.stage), strict=True)
    )
    scorer = FrameScorer.pretrained()
    sample = getattr(bl, "sample_name", "MoTe2 monolayer")
    plans = queue_plans(devices, {SCORER_NAME: scorer}, db, sample_name=sample)
    return {
        "RE": RE,
        "db": db,
        "bec": bec,
        "bl": bl,
        "scorer": scorer,
        **{d.name: d for d in devices.values()},
        **plans,
    }
