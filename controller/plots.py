"""Campaign plots (matplotlib PNGs): GP maps with the safe set, objective per shot, latent path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uedsteer.sim_devices.contracts import SETTING_UNITS

from .campaign import Campaign


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def gp_maps(campaign: Campaign, out: str | Path, n: int = 60) -> Path:
    """Posterior mean and uncertainty of the objective and of damage over fluence ×
    wavelength, with the measured points and the safe-set boundary.

    Parameters
    ----------
    campaign : Campaign
        Its config must steer ``fluence`` and ``wavelength``; other steered parameters are
        held at their last values.
    out : path
        PNG file.
    n : int
        Grid points per axis.
    """
    import torch

    plt = _plt()
    cfg = campaign.config
    names = campaign.optimizer.names
    if not {"fluence", "wavelength"} <= set(names):
        raise ValueError("gp_maps needs fluence and wavelength among the steered parameters")
    # safe_set and objective_model change nothing in the optimizer: the next proposal is
    # the same whether or not the maps were drawn
    opt = campaign.optimizer
    x, cols = campaign.observations()
    pf, pw = cfg.parameter("fluence"), cfg.parameter("wavelength")
    fl = np.linspace(pf.low, pf.high, n)
    wl = np.linspace(pw.low, pw.high, n)
    gf, gw = np.meshgrid(fl, wl)
    last = campaign.last_settings()
    grid = np.tile([last[k] for k in names], (n * n, 1))
    grid[:, names.index("fluence")] = gf.ravel()
    grid[:, names.index("wavelength")] = gw.ravel()
    found = opt.safe_set(x, cols, grid)
    safe = found.safe
    model_x = torch.tensor(opt.space.to_model(grid))
    obj = opt.objective_model(x, cols)  # the model the controller proposes with
    with torch.no_grad():
        post = obj.posterior(model_x)
        mu = post.mean.squeeze(-1).numpy().reshape(n, n)
        sd = post.variance.clamp_min(0).sqrt().squeeze(-1).numpy().reshape(n, n)
    dmu, dsd = found.damage_posterior(grid)
    panels = [
        (mu, f"{cfg.objective}: GP mean", "viridis"),
        (sd, f"{cfg.objective}: GP std", "magma"),
        (dmu.reshape(n, n), "damage probability: GP mean", "Reds"),
        (dsd.reshape(n, n), "damage logit: GP std", "magma"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), constrained_layout=True)
    status = np.array([t.status for t in campaign.record.trials])
    dmg_seen = np.nan_to_num(cols["damage_prob"], nan=0.0) >= 0.5
    for ax, (z, title, cmap) in zip(axes.flat, panels, strict=True):
        im = ax.pcolormesh(gf, gw, z, cmap=cmap, shading="auto")
        fig.colorbar(im, ax=ax)
        ax.contour(
            gf, gw, safe.reshape(n, n).astype(float), levels=[0.5], colors="w", linewidths=1.5
        )
        xs, ws = x[:, names.index("fluence")], x[:, names.index("wavelength")]
        ax.plot(xs, ws, "-", color="0.8", lw=0.6)
        good = (status == "ok") & ~dmg_seen
        ax.scatter(xs[good], ws[good], c="w", edgecolors="k", s=22, label="measured")
        ax.scatter(xs[dmg_seen], ws[dmg_seen], marker="x", c="r", s=40, label="caused damage")
        ax.scatter(
            xs[status != "ok"],
            ws[status != "ok"],
            marker="s",
            facecolors="none",
            edgecolors="orange",
            s=40,
            label="failed",
        )
        ax.set_xlabel("fluence (mJ/cm²)")
        ax.set_ylabel("wavelength (nm)")
        ax.set_title(title)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    held = ", ".join(
        f"{k} {last[k]:.4g} {SETTING_UNITS[k]}" for k in names if k not in ("fluence", "wavelength")
    )
    fig.suptitle(
        "GP posteriors; white contour: safe-set boundary (current evidence)"
        + (f"; slice at {held}" if held else "")
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def objective_trace(campaign: Campaign, out: str | Path) -> Path:
    """Objective, damage probability and heating per shot, with the target."""
    plt = _plt()
    df = campaign.record.to_dataframe()
    cfg = campaign.config
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    a1.plot(df["shot"], df["objective"], "o-", label=f"objective ({cfg.objective})")
    a1.plot(df["shot"], df["objective"].cummax(), "--", color="0.5", label="best so far")
    a1.axhline(cfg.target, color="g", ls=":", label=f"target {cfg.target}")
    if "truth_x" in df:
        a1.plot(df["shot"], df["truth_x"], ".", color="k", alpha=0.5, label="true x (sim)")
    a1.set_ylabel("objective")
    a1.legend(fontsize=8)
    a2.plot(df["shot"], df["damage_prob"], "o-", color="r", label="damage probability")
    a2.axhline(cfg.halt_damage_prob, color="r", ls=":", label="halt level")
    a2.set_ylabel("damage probability")
    a3 = a2.twinx()
    a3.plot(df["shot"], df["fluence"], "s-", color="tab:blue", ms=3, label="fluence")
    a3.set_ylabel("fluence (mJ/cm²)")
    a2.set_xlabel("shot")
    a2.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"campaign: {campaign.record.stop_reason or 'running'}", fontsize=9)
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def latent_path(campaign: Campaign, line, out: str | Path) -> Path:
    """The frames' path in latent space (projected on the 2H–1T' line and the direction of
    largest spread across it) with the line drawn."""
    plt = _plt()
    df = campaign.record.to_dataframe()
    zcols = sorted(c for c in df.columns if c.startswith("z") and c[1:].isdigit())
    z = df[zcols].to_numpy(dtype=float)
    ok = np.all(np.isfinite(z), axis=1)
    d = line.direction
    rel = z[ok] - line.z_2h
    along = rel @ d
    perp = rel - along[:, None] * d
    if len(perp) > 1 and np.linalg.norm(perp) > 0:
        u = np.linalg.svd(perp, full_matrices=False)[2][0]
    else:
        u = np.eye(len(d))[np.argmin(np.abs(d))]
        u = u - (u @ d) * d
        u /= np.linalg.norm(u)
    across = rel @ u
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    ax.plot([0, line.length], [0, 0], "k-", lw=3, alpha=0.4, label="2H–1T' line")
    ax.annotate("2H", (0, 0), textcoords="offset points", xytext=(-12, 6))
    ax.annotate("1T'", (line.length, 0), textcoords="offset points", xytext=(4, 6))
    sc = ax.scatter(along, across, c=np.asarray(df["shot"])[ok], cmap="viridis", s=30, zorder=3)
    ax.plot(along, across, "-", color="0.6", lw=0.8)
    fig.colorbar(sc, ax=ax, label="shot")
    ax.set_xlabel("along the line (latent units)")
    ax.set_ylabel("across the line (latent units)")
    ax.set_title("frame trajectory in the VAE latent space")
    ax.legend(fontsize=8)
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def campaign_plots(campaign: Campaign, line, out: str | Path = "campaign_output") -> list[Path]:
    """Write the campaign's three plots into the folder ``out`` (created if missing).

    ``campaign_gp_maps.png`` (:func:`gp_maps`), ``campaign_objective.png``
    (:func:`objective_trace`) and ``campaign_latent.png`` (:func:`latent_path`). Safe to call
    mid-campaign: nothing the controller proposes next changes.

    Parameters
    ----------
    campaign : Campaign
        The campaign so far (at least one shot).
    line : LatentLine
        The scorer's 2H–1T' line (``scorer.line``).
    out : path
        Folder for the PNG files.

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out)
    if not len(campaign.record):
        raise ValueError("campaign: no shot recorded yet, nothing to plot")
    out.mkdir(parents=True, exist_ok=True)
    return [
        gp_maps(campaign, out / "campaign_gp_maps.png"),
        objective_trace(campaign, out / "campaign_objective.png"),
        latent_path(campaign, line, out / "campaign_latent.png"),
    ]
