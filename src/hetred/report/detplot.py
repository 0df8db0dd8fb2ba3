"""The report page of one line detection: a matplotlib figure rendered to PNG (and PDF) bytes.

What ELiXer's report shows of the HETDEX data itself (no catalogue imaging: hetred works offline):

* the 1-D calibrated spectrum (``/Spectra spec1d`` / 2: 10^-17 erg s^-1 cm^-2 Å^-1) with its
  1-sigma errors and the fitted line: ``continuum / 2 + flux / (sqrt(2 pi) sigma) exp(-(l -
  wave)^2 / 2 sigma^2)`` with the ``.mc`` values (flux in 10^-17 erg s^-1 cm^-2, continuum per
  2 Å; docs/stages/detect.md);
* a zoom of +-``zoom_aa`` Å on the line, pixels with error bars;
* the 2-D cut-outs of the four highest-weight fibers and their weighted sum (``hetred spec2d``:
  ``im_array``, ``im_sum``, columns at ``im_wave``);
* the IFU's fibers (all exposures) at their RA/Dec offsets from the detection, coloured by their
  line flux (calibrated fibers summed over +-2 sigma, less the median of the side bands): the
  reconstructed line image; the fibers that contributed ringed, the detection marked;
* a zoom of +-``zoom_arcsec`` on the same fibers with their weights;
* the table of the ``.mc`` values (wave, flux, S/N, sigma, chi^2, continuum with their errors,
  RA/Dec, detectid).

Only ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot state), no tight or constrained
layout: a report takes about 0.1 s (benchmarks/bench_report.py).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

#: the panel of the cut-outs: a separator row of NaN between fibers
_SEP = 2


@dataclass
class IfuFibers:
    """The fibers of the detection's IFU: RA/Dec offsets (arcsec, east = +dx) and line flux
    (10^-17 erg s^-1 cm^-2), shapes (n,)."""

    dx: np.ndarray
    dy: np.ndarray
    flux: np.ndarray


@dataclass
class DetectionData:
    """Everything a report shows of one detection (read by :mod:`hetred.report.inputs`)."""

    detectid: int
    inputid: str
    name: str
    datevobs: str
    values: dict[str, float]                 #: the .mc values (names as in the detect file)
    wave: np.ndarray                         #: (1036,) Å
    spec: np.ndarray                         #: (1036,) 10^-17 erg/s/cm^2 per 2 Å (spec1d)
    err: np.ndarray                          #: (1036,) same units
    fib_dx: np.ndarray                       #: contributing fibers: offsets (arcsec)
    fib_dy: np.ndarray
    fib_weight: np.ndarray
    fib_label: list[str] = field(default_factory=list)   #: their names, highest weight first
    cut_array: np.ndarray | None = None      #: (4, h, w) cut-outs (counts), or None
    cut_sum: np.ndarray | None = None        #: (h, w)
    cut_wave: np.ndarray | None = None       #: (w,) Å
    ifu: IfuFibers | None = None
    notes: list[str] = field(default_factory=list)       #: what is missing and why


def line_model(wave: np.ndarray, v: dict[str, float]) -> np.ndarray:
    """The fitted line in 10^-17 erg s^-1 cm^-2 Å^-1 at ``wave`` (module docstring)."""
    sig = max(float(v.get("linewidth", 0.0)), 1e-3)
    g = np.exp(-0.5 * ((wave - float(v["wave"])) / sig) ** 2) / (np.sqrt(2 * np.pi) * sig)
    return 0.5 * float(v.get("continuum", 0.0)) + float(v["flux"]) * g


def line_flux_per_fiber(wave: np.ndarray, calfib: np.ndarray, center: float, sigma: float) -> np.ndarray:
    """Line flux of each fiber (10^-17 erg s^-1 cm^-2): calfib (n, 1036; per 2 Å pixel) summed
    over ``center`` +- 2 ``sigma`` (at least +-4 Å), less the median of the bands 10-40 Å away
    on both sides times the number of pixels summed. Zero-error (masked) pixels count as 0."""
    half = max(2.0 * sigma, 4.0)
    inl = np.abs(wave - center) <= half
    side = (np.abs(wave - center) >= 10.0) & (np.abs(wave - center) <= 40.0)
    if not inl.any():
        return np.zeros(calfib.shape[0], dtype=np.float32)
    on = np.nansum(calfib[:, inl], axis=1)
    cont = np.nanmedian(calfib[:, side], axis=1) if side.any() else 0.0
    return np.nan_to_num(on - cont * inl.sum()).astype(np.float32)


def _table_text(d: DetectionData) -> str:
    v = d.values

    def pm(name: str, fmt: str) -> str:
        val, err = v.get(name, np.nan), v.get(name + "_err", np.nan)
        return f"{val:{fmt}} ± {err:{fmt}}"

    rows = [
        ("detectid", f"{d.detectid}"),
        ("shot", d.datevobs),
        ("inputid", d.inputid),
        ("wave (Å)", pm("wave", ".2f")),
        ("flux (1e-17)", pm("flux", ".2f")),
        ("S/N", pm("sn", ".2f")),
        ("sigma (Å)", pm("linewidth", ".2f")),
        ("chi2", pm("chi2", ".2f")),
        ("cont. (/2Å)", pm("continuum", ".2f")),
        ("RA (deg)", f"{v.get('ra', np.nan):.6f}"),
        ("Dec (deg)", f"{v.get('dec', np.nan):+.6f}"),
        ("chi2fib", f"{v.get('chi2fib', np.nan):.2f}"),
        ("fibers", f"{len(d.fib_weight)}"),
    ]
    return "\n".join(f"{k:<15s} {val}" for k, val in rows)


def _cutout_image(d: DetectionData) -> tuple[np.ndarray, list[str]]:
    """The cut-outs stacked vertically (sum at the bottom), NaN rows between; labels top-down."""
    assert d.cut_array is not None and d.cut_sum is not None
    blocks, labels = [], []
    w = d.cut_sum.shape[1]
    sep = np.full((_SEP, w), np.nan, dtype=np.float32)
    for k in range(d.cut_array.shape[0]):
        if not np.any(d.cut_array[k]):
            continue
        blocks += [d.cut_array[k], sep]
        labels.append(d.fib_label[k] if k < len(d.fib_label) else f"fiber {k + 1}")
    blocks.append(d.cut_sum)
    labels.append("weighted sum")
    return np.vstack(blocks), labels


class ReportFigure:
    """One figure, built once and redrawn for each detection (its artists updated in place: a
    new figure per report would cost as much again as drawing it)."""

    def __init__(self, dpi: int = 80) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        self.dpi = dpi
        fig = self.fig = Figure(figsize=(12.0, 7.2), dpi=dpi)
        FigureCanvasAgg(fig)
        self.title = fig.text(0.01, 0.985, "", ha="left", va="top", fontsize=11, weight="bold")
        # the 1-D spectrum
        ax = self.ax_spec = fig.add_axes((0.05, 0.68, 0.66, 0.26))
        self.band = None
        (self.spec_line,) = ax.step([], [], where="mid", color="k", lw=0.6, label="spec1d / 2")
        (self.model_line,) = ax.plot([], [], color="tab:red", lw=0.9, label="line fit")
        self.spec_mark = ax.axvline(0, color="tab:red", lw=0.5, ls=":")
        ax.fill_between([], [], [], color="0.8", lw=0, label="±1σ")
        ax.set_xlabel("wavelength (Å)", fontsize=8, labelpad=1)
        ax.set_ylabel("f$_\\lambda$ (1e-17 erg/s/cm²/Å)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper right", ncol=3, frameon=False)
        # the zoom on the line
        az = self.ax_zoom = fig.add_axes((0.05, 0.355, 0.30, 0.235))
        (self.zoom_pts,) = az.plot([], [], "o", ms=2.5, color="k")
        self.zoom_err = LineCollection([], colors="0.5", linewidths=0.7)
        az.add_collection(self.zoom_err)
        (self.zoom_model,) = az.plot([], [], color="tab:red", lw=1.0)
        self.zoom_span = az.axvspan(0, 1, color="tab:red", alpha=0.08, lw=0)
        az.set_xlabel("wavelength (Å)", fontsize=8, labelpad=1)
        self.zoom_title = az.set_title("", fontsize=8, pad=2, y=1.0)
        az.tick_params(labelsize=7)
        # the 2-D cut-outs
        ac = self.ax_cut = fig.add_axes((0.05, 0.05, 0.66, 0.235))
        self.cut_img = ac.imshow(np.zeros((2, 2)), aspect="auto", origin="upper", cmap="Greys_r",
                                 interpolation="nearest")
        self.cut_labels = [ac.text(0, 0, "", color="yellow", fontsize=6.5, va="top") for _ in range(5)]
        self.cut_mark = ac.axvline(0, color="tab:red", lw=0.6, ls=":")
        self.cut_none = ac.text(0.5, 0.5, "no 2-D cut-outs (run hetred spec2d)", ha="center", va="center",
                                fontsize=9, transform=ac.transAxes)
        ac.set_yticks([])
        ac.set_xlabel("wavelength (Å) of the highest-weight fiber", fontsize=8, labelpad=1)
        ac.tick_params(labelsize=7)
        ac.set_title("2-D spectra: cut-outs of the highest-weight fibers (hetred spec2d)", fontsize=8, pad=2,
                     y=1.0)
        # the IFU and the zoom on the detection
        self.ax_ifu = fig.add_axes((0.39, 0.355, 0.155, 0.235))
        self.ax_near = fig.add_axes((0.585, 0.355, 0.155, 0.235))
        self.ifu_pts, self.ring, self.cross = [], [], []
        for a, size, ms in ((self.ax_ifu, 6.0, 7), (self.ax_near, 170.0, 10)):
            self.ifu_pts.append(a.scatter([], [], s=size, c=[], cmap="viridis", marker="o", linewidths=0))
            self.ring.append(a.scatter([], [], s=size, facecolors="none", edgecolors="w", linewidths=0.8))
            self.cross.append(a.plot([0], [0], marker="+", color="tab:red", ms=ms, mew=1.4)[0])
            a.set_facecolor("0.15")
            a.set_aspect("equal", adjustable="box")
            a.tick_params(labelsize=6.5)
            a.set_xlabel("ΔRA (″, E left)", fontsize=7, labelpad=1)
        self.ax_ifu.set_ylabel("ΔDec (″)", fontsize=7, labelpad=1)
        self.ax_ifu.set_title("IFU line image, all exposures", fontsize=8, pad=2, y=1.0)
        self.ax_near.set_title("contributing fibers, weights", fontsize=8, pad=2, y=1.0)
        self.ax_near.set_xlim(7, -7)
        self.ax_near.set_ylim(-7, 7)
        self.ifu_none = self.ax_ifu.text(0.5, 0.5, "no IFU fibers\n(hetred h5 shot)", ha="center", va="center",
                                         fontsize=8, color="w", transform=self.ax_ifu.transAxes)
        self.weights = [self.ax_near.text(0, 0, "", color="w", fontsize=5.5, ha="center", va="center")
                        for _ in range(12)]
        self.table = fig.text(0.765, 0.94, "", ha="left", va="top", family="monospace", fontsize=7.6)
        self.notes = fig.text(0.765, 0.30, "", ha="left", va="top", fontsize=7, color="tab:red")
        self.font = None
        # few ticks, and titles and axis labels at fixed places (y=1 above; set_label_coords):
        # text and its placement are most of the drawing time
        from matplotlib.ticker import MaxNLocator

        for a, nx, ny in ((ax, 8, 4), (az, 5, 4), (ac, 8, 0), (self.ax_ifu, 4, 4), (self.ax_near, 4, 4)):
            a.xaxis.set_major_locator(MaxNLocator(nx))
            a.xaxis.set_label_coords(0.5, {id(ax): -0.12, id(az): -0.1, id(ac): -0.11}.get(id(a), -0.13))
            if ny:
                a.yaxis.set_major_locator(MaxNLocator(ny))
                a.yaxis.set_label_coords(-0.05 if a is ax else -0.2, 0.5)

    def _spectrum(self, d: DetectionData) -> None:
        v, ax = d.values, self.ax_spec
        good = d.err > 0
        wl, flam, elam = d.wave, d.spec / 2.0, d.err / 2.0
        if self.band is not None:
            self.band.remove()
        self.band = ax.fill_between(wl, np.where(good, flam - elam, np.nan), np.where(good, flam + elam, np.nan),
                                    step="mid", color="0.8", lw=0, zorder=1)
        self.spec_line.set_data(wl, np.where(good, flam, np.nan))
        model = line_model(wl, v)
        self.model_line.set_data(wl, model)
        w0 = float(v["wave"])
        self.spec_mark.set_xdata([w0, w0])
        lo, hi = np.nanpercentile(flam[good], [1, 99]) if good.any() else (-1.0, 1.0)
        top = max(float(hi), float(np.max(model)))
        pad = 0.15 * max(top - lo, 1e-3)
        ax.set_ylim(lo - pad, top + pad)
        ax.set_xlim(wl[0], wl[-1])

    def _zoom(self, d: DetectionData) -> None:
        v, az = d.values, self.ax_zoom
        w0, sig = float(v["wave"]), float(v.get("linewidth", 2.0))
        good = d.err > 0
        wl, flam, elam = d.wave, d.spec / 2.0, d.err / 2.0
        half = max(50.0, 6 * sig)
        zg = (np.abs(wl - w0) <= half) & good
        self.zoom_pts.set_data(wl[zg], flam[zg])
        self.zoom_err.set_segments([((x, y - e), (x, y + e)) for x, y, e in zip(wl[zg], flam[zg], elam[zg])])
        fine = np.linspace(w0 - half, w0 + half, 300)
        model = line_model(fine, v)
        self.zoom_model.set_data(fine, model)
        self.zoom_span.set_x(w0 - sig)
        self.zoom_span.set_width(2 * sig)
        az.set_xlim(w0 - half, w0 + half)
        ys = np.concatenate([flam[zg] - elam[zg], flam[zg] + elam[zg], model]) if zg.any() else model
        lo, hi = float(np.min(ys)), float(np.max(ys))
        pad = 0.08 * max(hi - lo, 1e-3)
        az.set_ylim(lo - pad, hi + pad)
        self.zoom_title.set_text(f"line: {w0:.2f} Å, σ {sig:.2f} Å, S/N {v.get('sn', np.nan):.1f}")

    def _cutouts(self, d: DetectionData) -> None:
        have = d.cut_array is not None and d.cut_sum is not None
        self.cut_img.set_visible(have)
        self.cut_mark.set_visible(have)
        self.cut_none.set_visible(not have)
        for t in self.cut_labels:
            t.set_text("")
        if not have:
            return
        img, labels = _cutout_image(d)
        finite = img[np.isfinite(img)]
        vmin, vmax = (np.percentile(finite, [2, 99.5]) if finite.size else (0.0, 1.0))
        cw = d.cut_wave if d.cut_wave is not None and np.any(d.cut_wave) else np.arange(img.shape[1], dtype=float)
        x0, x1 = float(cw[0]), float(cw[-1])
        self.cut_img.set_data(img)
        self.cut_img.set_extent((x0, x1, img.shape[0], 0))
        self.cut_img.set_clim(float(vmin), float(max(vmax, vmin + 1e-6)))
        self.ax_cut.set_xlim(x0, x1)
        self.ax_cut.set_ylim(img.shape[0], 0)
        h = d.cut_sum.shape[0]
        for t, (k, lab) in zip(self.cut_labels, enumerate(labels)):
            t.set_position((x0, k * (h + _SEP) + 0.6))
            t.set_text(" " + lab)
        w0 = float(d.values["wave"])
        self.cut_mark.set_xdata([w0, w0])

    def _fibers(self, d: DetectionData) -> None:
        have = d.ifu is not None and d.ifu.flux.size > 0
        self.ifu_none.set_visible(not have)
        ring = np.column_stack([d.fib_dx, d.fib_dy]) if len(d.fib_dx) else np.zeros((0, 2))
        if have:
            assert d.ifu is not None
            f = d.ifu.flux
            vmin, vmax = float(np.nanpercentile(f, 5)), float(np.nanpercentile(f, 99.5))
            cx, cy = float(np.median(d.ifu.dx)), float(np.median(d.ifu.dy))
            near = (np.abs(d.ifu.dx) < 8) & (np.abs(d.ifu.dy) < 8)
            for pts, sel in zip(self.ifu_pts, (slice(None), near)):
                pts.set_offsets(np.column_stack([d.ifu.dx[sel], d.ifu.dy[sel]]))
                pts.set_array(f[sel])
                pts.set_clim(vmin, max(vmax, vmin + 1e-6))
        else:
            cx = cy = 0.0
            for pts in self.ifu_pts:
                pts.set_offsets(np.zeros((0, 2)))
                pts.set_array(np.zeros(0))
        self.ax_ifu.set_xlim(cx + 27, cx - 27)          # east to the left
        self.ax_ifu.set_ylim(cy - 27, cy + 27)
        for r in self.ring:
            r.set_offsets(ring)
        order = [k for k in np.argsort(-d.fib_weight) if abs(d.fib_dx[k]) < 6.5 and abs(d.fib_dy[k]) < 6.5]
        for t, k in zip(self.weights, order + [None] * len(self.weights)):
            if k is None:
                t.set_text("")
            else:
                t.set_position((float(d.fib_dx[k]), float(d.fib_dy[k])))
                t.set_text(f"{d.fib_weight[k]:.2f}")

    def render(self, d: DetectionData, formats: tuple[str, ...] = ("png",), thumb_width: int = 0) -> dict[str, bytes]:
        """The report of ``d`` as ``{format: bytes}`` for each of ``formats`` (``png``, ``pdf``)
        and, with ``thumb_width`` > 0, ``thumb``: a JPEG that many pixels wide.

        ``png`` carries the text chunk ``hetred-key`` (:func:`report_key`): a rerun keeps a
        report only while its key still matches the detection (detectids change when months merge)."""
        self.title.set_text(f"{d.name or 'detection'}   detectid {d.detectid}   {d.datevobs}   {d.inputid}")
        self._spectrum(d)
        self._zoom(d)
        self._cutouts(d)
        self._fibers(d)
        self.notes.set_text("\n".join(d.notes[:6]))
        table = _table_text(d)
        out: dict[str, bytes] = {}
        # the table is a third of matplotlib's drawing time: PIL writes it on the pixels (the PDF
        # gets matplotlib's text)
        self.table.set_text("")
        self.fig.canvas.draw()
        rgb = self._with_table(np.asarray(self.fig.canvas.buffer_rgba())[..., :3], table)
        if "png" in formats:
            out["png"] = _png(rgb, {"Software": "hetred", "hetred-key": report_key(d)})
        if "pdf" in formats:
            self.table.set_text(table)
            buf = io.BytesIO()
            self.fig.savefig(buf, format="pdf", dpi=self.dpi, metadata={"Creator": "hetred"})
            out["pdf"] = buf.getvalue()
            self.table.set_text("")
        if thumb_width > 0:
            out["thumb"] = _thumbnail(rgb, thumb_width)
        return out

    def _with_table(self, rgb: np.ndarray, text: str) -> np.ndarray:
        """``rgb`` (h, w, 3) with the table written at the table artist's place, in the font
        matplotlib would use (DejaVu Sans Mono)."""
        from PIL import Image, ImageDraw, ImageFont

        if self.font is None:
            from matplotlib import font_manager

            path = font_manager.findfont(font_manager.FontProperties(family="monospace"))
            self.font = ImageFont.truetype(path, size=max(6, round(self.table.get_fontsize() * self.dpi / 72.0)))
        im = Image.fromarray(rgb)
        h, w = rgb.shape[:2]
        x, y = self.table.get_position()
        ImageDraw.Draw(im).multiline_text((x * w, (1.0 - y) * h), text, font=self.font, fill=(0, 0, 0),
                                          spacing=2)
        return np.asarray(im)


def render(d: DetectionData, dpi: int = 80, formats: tuple[str, ...] = ("png",),
           thumb_width: int = 0) -> dict[str, bytes]:
    """One report on a figure of its own (:meth:`ReportFigure.render`)."""
    return ReportFigure(dpi).render(d, formats, thumb_width)


def _png(rgb: np.ndarray, text: dict[str, str]) -> bytes:
    """PNG bytes of an (h, w, 3) uint8 image with tEXt chunks (zlib level 2: a sixth of
    matplotlib's time for a few % more bytes)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", pnginfo=info, compress_level=2)
    return buf.getvalue()


def _thumbnail(rgb: np.ndarray, width: int) -> bytes:
    """A JPEG ``width`` pixels wide of an (h, w, 3) uint8 image (a third of a PNG's bytes)."""
    from PIL import Image

    im = Image.fromarray(rgb)
    factor = im.width // width
    if factor > 1 and im.width == factor * width:       # a whole factor: box average (fast)
        small = im.reduce(factor)
    else:
        small = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def report_key(d: DetectionData) -> str:
    """What identifies the detection a report shows: inputid and its wave, flux, S/N."""
    v = d.values
    return f"{d.inputid} {v.get('wave', 0.0):.2f} {v.get('flux', 0.0):.2f} {v.get('sn', 0.0):.2f}"


def png_key(data_or_path) -> str | None:
    """The ``hetred-key`` text chunk of a report PNG (bytes or path), None when absent or unreadable."""
    from PIL import Image

    try:
        src = io.BytesIO(data_or_path) if isinstance(data_or_path, (bytes, bytearray)) else data_or_path
        with Image.open(src) as im:
            return im.info.get("hetred-key") or (getattr(im, "text", {}) or {}).get("hetred-key")
    except (OSError, ValueError, SyntaxError):
        return None
