"""Run a whole campaign on a :class:`SimulatedBeamline` and return its record (with truth)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from uedsteer.controller.campaign import Campaign, CampaignRecord, Trial
from uedsteer.controller.config import CampaignConfig
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.response import ResponseParams

from .campaign import campaign


def simulate_campaign(
    config: CampaignConfig | None = None,
    response: ResponseParams | None = None,
    seed: int = 0,
    scorer=None,
    catalog=None,
    on_shot: Callable[[Trial], None] | None = None,
    RE: RunEngine | None = None,
    md: dict | None = None,
    controller: Campaign | None = None,
    beamline: SimulatedBeamline | None = None,
) -> CampaignRecord:
    """Run a closed-loop campaign on a simulated beamline.

    Parameters
    ----------
    config : CampaignConfig, optional
        Default ``CampaignConfig()``.
    response : ResponseParams, optional
        The hidden sample (default ``ResponseParams()``); the controller never sees it.
    seed : int
        Seed of the beamline's random numbers (frames, noise).
    scorer : FrameScorer, optional
        Default: the shipped ``FrameScorer.pretrained()``.
    catalog : tiled client, optional
        When given, every document goes there (TiledWriter, one write per event so a killed
        process loses nothing).
    on_shot : callable, optional
        Called with each :class:`Trial` (progress display).
    RE : RunEngine, optional
        Default: a fresh RunEngine without a context-manager signal handler. When a pause
        interrupts the campaign (``RunEngineInterrupted``), the catalog stays subscribed so
        that ``RE.abort()`` or ``RE.resume()`` is recorded too.
    md : dict, optional
        Extra run metadata.
    controller : Campaign, optional
        Continue this campaign (e.g. from :meth:`Campaign.resume`) instead of a new one.
    beamline : SimulatedBeamline, optional
        Default: ``SimulatedBeamline(response, seed)``.

    Returns
    -------
    CampaignRecord
        Per shot the settings, the scores and the sample's hidden truth; ``to_dataframe()``
        gives one row per shot with ``truth_x``, ``truth_vacancy``, ``truth_molten``.
    """
    if scorer is None:
        from uedsteer.surrogates.scorer import FrameScorer

        scorer = FrameScorer.pretrained()
    controller = controller or Campaign(config or CampaignConfig())
    bl = beamline or SimulatedBeamline(response or ResponseParams(), seed=seed)
    if RE is None:
        RE = RunEngine({}, call_returns_result=True, context_managers=[])
    token = None
    if catalog is not None:
        from .catalog import subscribe

        token = subscribe(RE, catalog, batch_size=1)

    def truth() -> dict[str, Any]:
        return bl.truth()

    try:
        RE(campaign(bl, scorer, controller, md=md, truth_fn=truth, on_shot=on_shot))
    except RunEngineInterrupted:
        # Paused (Ctrl-C): stay subscribed so RE.abort() / RE.resume() still reach the catalog.
        raise
    except BaseException:
        if token is not None:
            RE.unsubscribe(token)
        raise
    if token is not None:
        RE.unsubscribe(token)
    return controller.record
