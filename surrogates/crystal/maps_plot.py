"""The crystal maps of a 4D-STEM scan as a PNG: the crystal-system map and the lattice map.

The maps themselves are computed in :mod:`~uedsteer.surrogates.crystal.maps`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .maps import CrystalMaps

SYSTEM_COLORS = {
    "cubic": "#d62728",  # red, orange and green as in the paper's Fig. 7
    "hexagonal": "#ff7f0e",
    "tetragonal": "#2ca02c",
    "trigonal": "#9467bd",
    "orthorhombic": "#1f77b4",
    "monoclinic": "#8c564b",
}
"""Colour of each crystal system in :func:`plot_crystal_maps`."""


def plot_crystal_maps(
    maps: CrystalMaps,
    path: str | Path,
    step_nm: float | None = None,
    reference_a: float | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG: crystal-system map (categorical, legend with pixel counts) and lattice map.

    Parameters
    ----------
    maps : CrystalMaps
    path : str or Path
        PNG path (parent folders are created).
    step_nm : float, optional
        Probe step; axes in nm when given, else in pixels.
    reference_a : float, optional
        A known lattice constant (e.g. 4.08 Å for Au) quoted in the title.
    title : str, optional
        First line of the title.

    Returns
    -------
    pathlib.Path
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    ny, nx = maps.shape
    scale = float(step_nm) if step_nm else 1.0
    ext = [-0.5 * scale, (nx - 0.5) * scale, (ny - 0.5) * scale, -0.5 * scale]
    unit = "nm" if step_nm else "pixel"
    colours = [SYSTEM_COLORS.get(s, "#7f7f7f") for s in maps.systems]
    fig, (ax_s, ax_a) = plt.subplots(1, 2, figsize=(11.5, 5.0))

    # crystal systems: index k → colour k, dropped (−1) → light grey background
    cmap = ListedColormap(["#e6e6e6", *colours])
    ax_s.imshow(
        maps.system + 1, cmap=cmap, vmin=0, vmax=len(colours), extent=ext, interpolation="nearest"
    )
    counts = maps.counts()
    handles = [
        Patch(color=c, label=f"{s} ({int(counts[s])} px)")
        for s, c in zip(maps.systems, colours, strict=True)
        if counts[s] > 0
    ]
    n_drop = int((~maps.kept).sum())
    handles.append(Patch(color="#e6e6e6", label=f"dropped ({n_drop} px)"))
    ax_s.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    ax_s.set_title(
        f"crystal system ({maps.median_size}×{maps.median_size} mode filter, "
        f"difference ≥ {maps.min_difference:g})",
        fontsize=9,
    )

    # lattice constant
    kept_a = maps.lattice[np.isfinite(maps.lattice)]
    if kept_a.size:
        vmin, vmax = np.percentile(kept_a, [2, 98])
        if vmax - vmin < 1e-3:
            vmin, vmax = vmin - 0.05, vmax + 0.05
    else:
        vmin, vmax = 0.0, 1.0
    cmap_a = plt.get_cmap("viridis").with_extremes(bad="#e6e6e6")
    im = ax_a.imshow(
        np.ma.masked_invalid(maps.lattice),
        cmap=cmap_a,
        vmin=vmin,
        vmax=vmax,
        extent=ext,
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax_a, label="lattice constant a (Å)", shrink=0.85)
    model = "per-pixel system" if maps.lattice_system == "per_pixel" else maps.lattice_system
    ax_a.set_title(f"lattice constant ({model} lattice model)", fontsize=9)
    if not kept_a.size:
        ax_a.text(0.5, 0.5, "no pixel kept", transform=ax_a.transAxes, ha="center")
    for ax in (ax_s, ax_a):
        ax.set_xlabel(f"x ({unit})")
        ax.set_ylabel(f"y ({unit})")

    median = (
        f"median a = {maps.median_lattice:.3f} Å"
        if np.isfinite(maps.median_lattice)
        else "median a: no pixel kept"
    )
    if reference_a is not None:
        median += f" (reference {reference_a:.2f} Å)"
    head = f"{title}\n" if title else ""
    fig.suptitle(f"{head}{median}; {int(maps.kept.sum())} of {nx * ny} pixels kept", fontsize=11)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
