"""QA plot of a month's twilight calibration per IFU (Karl's plotcaliball.f): one row per amp
with the traces (minus their value at the centre column), the arc-line residuals per line, the
fiber-to-fiber (median 3700-5400 Å per fiber, dead fibers in red), the profile FWHM per fiber
and the amp-to-amp factor in the row title."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from hetred.io.atomic import atomic_path
from hetred.layout import Layout

AMPS = ("LL", "LU", "RL", "RU")


def _fwhm(profile_values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """FWHM (px) of each fiber's profile at the middle knot column."""
    v = profile_values[:, profile_values.shape[1] // 2, :] if profile_values.ndim == 3 else profile_values
    out = np.full(v.shape[0], np.nan)
    for i, p in enumerate(v):
        if not np.isfinite(p).all() or p.max() <= 0:
            continue
        above = offsets[p >= 0.5 * p.max()]
        out[i] = above.max() - above.min() + (offsets[1] - offsets[0])
    return out


def write_qa(layout: Layout, month: str, ifuslot: int) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    libs = {}
    for amp in AMPS:
        for p in layout.glob("callib", month=month, ifuslot=ifuslot, amp=amp):
            libs[amp] = p
    if not libs:
        return None
    fig, axes = plt.subplots(len(AMPS), 4, figsize=(16, 3.0 * len(AMPS)), squeeze=False)
    for r, amp in enumerate(AMPS):
        ax = axes[r]
        if amp not in libs:
            for a in ax:
                a.set_axis_off()
            ax[0].set_title(f"{amp}: no library")
            continue
        with fits.open(libs[amp]) as h:
            tr = np.asarray(h["trace"].data, float)
            wave = np.asarray(h["wavelength"].data, float)
            ftf = np.asarray(h["fiber_to_fiber"].data, float)
            dead = np.asarray(h["dead_fibers"].data["DEAD"], bool)
            a2a = float(h["amp_to_amp"].header["A2A"])
            stat = h["amp_to_amp"].header.get("A2ASTAT", "")
            names = [x.name for x in h]
            resid = np.asarray(h["LINE_RESID"].data, float) if "LINE_RESID" in names else None
            lines = ([h["LINE_RESID"].header.get(f"LINE{j + 1}") for j in range(resid.shape[-1])]
                     if resid is not None else [])
            prof = np.asarray(h["profile"].data, float) if "PROFILE" in names else None
            poff = None
            if prof is not None:
                n = prof.shape[-1]
                hh = h["profile"].header
                poff = float(hh.get("NODE0", -7.5)) + np.arange(n) * float(hh.get("NODESTEP", 0.25))
        c = tr.shape[1] // 2
        x = np.arange(tr.shape[1])
        for i in range(0, tr.shape[0], 8):
            ax[0].plot(x, tr[i] - tr[i, c], lw=0.6, color="r" if dead[i] else "k")
        ax[0].set_title(f"{ifuslot:03d}{amp} traces - centre (every 8th)", fontsize=9)
        if resid is not None and resid.size:
            res = resid.reshape(-1, resid.shape[-2], resid.shape[-1])
            for j, lam in enumerate(lines):
                v = res[:, :, j].ravel()
                v = v[np.isfinite(v)]
                ax[1].plot(np.full(v.size, lam) + np.random.default_rng(j).normal(0, 8, v.size), v, ".", ms=1)
            ax[1].set_ylim(-0.2, 0.2)
        ax[1].axhline(0, color="k", lw=0.5)
        ax[1].set_title("arc line residuals (Å) per line", fontsize=9)
        sel = (wave > 3700) & (wave < 5400)
        med = np.array([np.median(f[s]) if s.any() else np.nan for f, s in zip(ftf, sel)])
        fib = np.arange(1, med.size + 1)
        ax[2].plot(fib, med, "k.", ms=3)
        ax[2].plot(fib[dead], med[dead], "rx", ms=6, label="dead")
        ax[2].axhline(0.5, color="r", lw=0.5, ls=":")
        ax[2].set_title(f"fiber-to-fiber  (a2a {a2a:.4f} {stat})", fontsize=9)
        if prof is not None and prof.ndim >= 2 and poff is not None:
            fw = _fwhm(prof, poff)
            ax[3].plot(np.arange(1, fw.size + 1), fw, "b.", ms=3)
        ax[3].set_title("profile FWHM (px) per fiber", fontsize=9)
    fig.suptitle(f"hetred twical {month} IFU slot {ifuslot:03d}")
    fig.tight_layout()
    out = layout.path("qa", stage="twical", name=f"{month}_{ifuslot:03d}.png")
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=70, format="png")
    plt.close(fig)
    return out
