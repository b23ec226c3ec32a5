"""The campaign as bluesky-queueserver queue items: plans whose parameters are JSON values.

A queue item names a plan and gives its parameters as JSON; the RE Manager checks them against
each plan's annotation before the item enters the queue (types, the ``min``/``max`` limits, the
names allowed) and shows those limits to its clients. :func:`queue_plans` builds the two plans
the uedsteer profile (:mod:`uedsteer.plans.qserver_profile`) offers, bound to the profile's
catalog and scorers:

``uedsteer_campaign``
    A new campaign (:func:`uedsteer.plans.campaign.campaign`): the configuration as a mapping
    of :class:`~uedsteer.controller.config.CampaignConfig` fields or the path of a YAML file,
    the shot budget, the scorer by name and the beamline's devices by name.
``uedsteer_resume``
    Continue a campaign from its runs in the catalog
    (:func:`uedsteer.plans.resume.resume_campaign`): the run's uid, the configuration changes
    allowed on a resume, and the same devices and scorer.

The devices are named by role (``detector``, ``pump``, ``gun``, ``delay``, ``stage``); the
RE Manager replaces each name by the device of that name in its namespace (and refuses a name
that is not one of the profile's devices, or one the user's group may not use), and the plan
assembles them into a beamline (:class:`DeviceBeamline`). What the queue cannot check (a
configuration's fields, a YAML file, a run in the catalog) is checked when the plan starts,
before the run opens and before anything moves: the item then fails with a one-line message.

Pausing, resuming, stopping and aborting through the queue act on the campaign plan itself,
which closes the pump shutter as the RunEngine pauses and on every way out of the run.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bluesky_queueserver import parameter_annotation_decorator
from pydantic import ValidationError

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig, format_validation_error
from uedsteer.sim_devices.roles import BeamlineRoles

from .campaign import N_REFERENCE, campaign
from .resume import FOLLOW, AlreadyResumed, resume_campaign
from .scans import MsgGenerator

__all__ = ["DEVICE_ROLES", "DeviceBeamline", "load_config", "queue_plans"]

DEVICE_ROLES = ("detector", "pump", "gun", "delay", "stage")
"""The devices a queue item names, by parameter: the area detector, the pump laser (fluence,
wavelength, shutter), the electron gun (charge), the delay stage and the sample stage (spot)."""

MAX_BUDGET = 10000
"""The largest shot budget a queue item may ask for (as :class:`CampaignConfig` allows)."""

MAX_REFERENCE = 100
"""The most pristine reference frames a queue item may ask for."""


class DeviceBeamline(BeamlineRoles):
    """The beamline a plan drives (:class:`uedsteer.plans.protocols.Beamline`), made of the
    devices a queue item named (the accessors: :class:`~uedsteer.sim_devices.roles.BeamlineRoles`).

    Parameters
    ----------
    detector, pump, gun, delay, stage : ophyd.Device
        The devices of :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline` or
        :class:`~uedsteer.sim_devices.epics_beamline.EpicsBeamline`: ``pump.fluence``,
        ``pump.wavelength``, ``pump.shutter``, ``gun.charge``, ``delay.delay``,
        ``stage.spot`` and the detector's ``image``.
    sample_name : str
        For the run's metadata.
    """

    def __init__(
        self,
        detector: Any,
        pump: Any,
        gun: Any,
        delay: Any,
        stage: Any,
        sample_name: str = "MoTe2 monolayer",
    ) -> None:
        self.detector, self.pump, self.gun, self.delay, self.stage = (
            detector,
            pump,
            gun,
            delay,
            stage,
        )
        self.sample_name = sample_name


def load_config(
    config: Mapping[str, Any] | str | None, budget: int | None = None
) -> CampaignConfig:
    """The campaign configuration a queue item gives.

    Parameters
    ----------
    config : mapping, str or None
        :class:`CampaignConfig` fields, or the path of a YAML file of them (on the machine
        that runs the RE Manager), or None for the defaults.
    budget : int, optional
        Replaces the configuration's ``budget``.

    Returns
    -------
    CampaignConfig

    Raises
    ------
    ValueError
        One line: no such file, not YAML, a field that is unknown or invalid.
    """
    where = "config"
    try:
        if config is None:
            cfg = CampaignConfig()
        elif isinstance(config, str):
            where = f"config {config!r}"
            if not Path(config).expanduser().is_file():
                raise ValueError(f"{where}: no such file on the RE Manager's machine")
            cfg = CampaignConfig.from_yaml(Path(config).expanduser())
        elif isinstance(config, Mapping):
            cfg = CampaignConfig.model_validate(dict(config))
        else:
            raise ValueError(
                f"config is a {type(config).__name__}: give a mapping of fields, a YAML path "
                "or nothing"
            )
        if budget is not None:
            cfg = CampaignConfig.model_validate({**cfg.model_dump(), "budget": budget})
    except ValidationError as err:
        raise ValueError(f"{where}: {format_validation_error(err)}") from None
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - a YAML syntax error, an unreadable file
        raise ValueError(f"{where}: {' '.join(str(err).split())}") from None
    return cfg


def _device_annotation(role: str, device: Any) -> dict[str, Any]:
    kind = f"{role.capitalize()}Devices"
    return {
        "description": f"The {role} device, by name (default {device.name!r}).",
        "annotation": kind,
        "devices": {kind: [device.name]},
        "default": device.name,
    }


def _common_annotations(devices: Mapping[str, Any], scorers: Mapping[str, Any]) -> dict:
    default_scorer = next(iter(scorers))
    return {
        "scorer": {
            "description": f"The frame scorer, by name (default {default_scorer!r}).",
            "annotation": "Scorers",
            "enums": {"Scorers": list(scorers)},
        },
        "budget": {"annotation": "typing.Optional[int]", "min": 1, "max": MAX_BUDGET},
        "md": {"annotation": "typing.Optional[typing.Dict[str, typing.Any]]"},
        **{role: _device_annotation(role, devices[role]) for role in DEVICE_ROLES},
    }


def queue_plans(
    devices: Mapping[str, Any],
    scorers: Mapping[str, Any],
    catalog: Any,
    sample_name: str = "MoTe2 monolayer",
) -> dict[str, Callable[..., MsgGenerator]]:
    """The queue plans of the uedsteer profile, bound to its devices, scorers and catalog.

    Parameters
    ----------
    devices : mapping
        The device of each role of :data:`DEVICE_ROLES`; their names are the defaults (and the
        only names allowed) of the plans' device parameters, and the profile puts them in its
        namespace under those names.
    scorers : mapping of str to FrameScorer
        The scorers a queue item may name; the first is the default.
    catalog : tiled client
        The catalog the profile's RunEngine writes to (``uedsteer_resume`` reads the campaign
        from it).
    sample_name : str
        For the runs' metadata.

    Returns
    -------
    dict
        ``{"uedsteer_campaign": plan, "uedsteer_resume": plan}``, each a generator function
        annotated for the queueserver (``parameter_annotation_decorator``).

    Raises
    ------
    ValueError
        A role without a device, or no scorer.
    """
    missing = [r for r in DEVICE_ROLES if r not in devices]
    if missing:
        raise ValueError(f"queue_plans: no device for {', '.join(missing)}")
    if not scorers:
        raise ValueError("queue_plans: give at least one scorer")
    default_scorer = next(iter(scorers))
    det, pump, gun, delay, stage = (devices[r] for r in DEVICE_ROLES)

    def beamline_and_scorer(named: Mapping[str, Any], scorer: str) -> tuple[DeviceBeamline, Any]:
        for role, device in named.items():
            if isinstance(device, str):  # a plan called directly, not through the queue
                raise ValueError(f"{role}={device!r}: give the device, not its name")
        if scorer not in scorers:
            raise ValueError(f"scorer={scorer!r} is not known; allowed: {', '.join(scorers)}")
        return DeviceBeamline(**named, sample_name=sample_name), scorers[scorer]

    common = _common_annotations(devices, scorers)

    @parameter_annotation_decorator(
        {
            "parameters": {
                "config": {
                    "annotation": "typing.Union[typing.Dict[str, typing.Any], str, None]",
                },
                "n_reference": {"annotation": "int", "min": 3, "max": MAX_REFERENCE},
                **common,
            }
        }
    )
    def uedsteer_campaign(
        config: Mapping[str, Any] | str | None = None,
        budget: int | None = None,
        n_reference: int = N_REFERENCE,
        scorer: str = default_scorer,
        detector: Any = det,
        pump: Any = pump,
        gun: Any = gun,
        delay: Any = delay,
        stage: Any = stage,
        md: dict[str, Any] | None = None,
    ) -> MsgGenerator:
        """A closed-loop campaign: propose, ramp, acquire, score, until a stop condition.

        The pump shutter is closed when the campaign pauses and on every way out of it
        (success, stop, abort, a failure).

        Parameters
        ----------
        config : dict, str or None
            The campaign configuration: a mapping of CampaignConfig fields, or the path of a
            YAML file of them on the RE Manager's machine; None for the defaults. Checked when
            the plan starts, before anything moves.
        budget : int, optional
            Shot budget; replaces the configuration's.
        n_reference : int
            Pristine frames (shutter closed) taken first.
        scorer : str
            The frame scorer, by name.
        detector : str
            The area detector, by name.
        pump : str
            The pump laser (fluence, wavelength, shutter), by name.
        gun : str
            The electron gun (bunch charge), by name.
        delay : str
            The pump-probe delay stage, by name.
        stage : str
            The sample stage (spot), by name.
        md : dict, optional
            Extra metadata for the run's start document.
        """
        named = dict(detector=detector, pump=pump, gun=gun, delay=delay, stage=stage)
        cfg = load_config(config, budget)
        beamline, frame_scorer = beamline_and_scorer(named, scorer)
        controller = Campaign(cfg)
        return (
            yield from campaign(beamline, frame_scorer, controller, md=md, n_reference=n_reference)
        )

    @parameter_annotation_decorator(
        {
            "parameters": {
                "uid": {"annotation": "str"},
                "changes": {"annotation": "typing.Optional[typing.Dict[str, typing.Any]]"},
                "follow": {"annotation": "Follow", "enums": {"Follow": list(FOLLOW)}},
                **common,
            }
        }
    )
    def uedsteer_resume(
        uid: str,
        changes: Mapping[str, Any] | None = None,
        budget: int | None = None,
        follow: str = "refuse",
        scorer: str = default_scorer,
        detector: Any = det,
        pump: Any = pump,
        gun: Any = gun,
        delay: Any = delay,
        stage: Any = stage,
        md: dict[str, Any] | None = None,
    ) -> MsgGenerator:
        """Continue a campaign from its runs in the catalog, where it stopped.

        The campaign keeps its recorded configuration; only changes that never loosen its
        safety are allowed (budget, target, stricter halting). A campaign that had finished
        and whose changes do not reopen it fires nothing: the item fails and says why.

        Parameters
        ----------
        uid : str
            The campaign run's uid (or a unique prefix of it).
        changes : dict, optional
            Configuration changes, e.g. {"budget": 60, "damage_bound": 0.1}.
        budget : int, optional
            New shot budget, counting the recorded shots (same as changes={"budget": N}).
        follow : str
            When the run was already continued by another: 'refuse', or 'newest' to continue
            the newest run of the campaign.
        scorer : str
            The frame scorer, by name.
        detector : str
            The area detector, by name.
        pump : str
            The pump laser (fluence, wavelength, shutter), by name.
        gun : str
            The electron gun (bunch charge), by name.
        delay : str
            The pump-probe delay stage, by name.
        stage : str
            The sample stage (spot), by name.
        md : dict, optional
            Extra metadata for the run's start document.
        """
        named = dict(detector=detector, pump=pump, gun=gun, delay=delay, stage=stage)
        beamline, frame_scorer = beamline_and_scorer(named, scorer)
        asked = dict(changes or {})
        if budget is not None:
            asked["budget"] = budget
        try:
            controller = resume_campaign(catalog, uid, changes=asked, follow=follow)
        except AlreadyResumed as err:
            raise ValueError(
                f"uid {uid!r} was already continued by run {err.newest!r}; resume that one, "
                "or pass follow='newest'"
            ) from None
        if controller.finished_reason:
            raise ValueError(
                f"campaign {controller.resumed_from!r}: nothing to do, no run opened: "
                f"{controller.finished_reason}"
            )
        return (yield from campaign(beamline, frame_scorer, controller, md=md))

    plans = {"uedsteer_campaign": uedsteer_campaign, "uedsteer_resume": uedsteer_resume}
    for plan in plans.values():
        plan.__module__ = __name__
        plan.__qualname__ = plan.__name__
    return plans
