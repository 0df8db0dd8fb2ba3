"""The body of a shot's page: pointing and astrometry, focal-plane images, throughput, the
full-field sky's amp table with vred3's red flags, and the detections with their report
thumbnails (each linking to the full report)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from hetred.report import html as H
from hetred.report import qaplots
from hetred.report.settings import ReportSettings
from hetred.report.shotdata import ShotData

if TYPE_CHECKING:
    from hetred.report.pages import Folder


def _kv(rows: list[tuple[str, H.Cell | str]]) -> str:
    return H.table([], [[H.Cell(k, "l"), v if isinstance(v, H.Cell) else H.Cell(v, "l")] for k, v in rows],
                   cls="kv")


def _astrometry(f: Folder, s: ShotData, st: ReportSettings) -> str:
    out = ["<h2>Pointing and astrometry</h2>"]
    if s.final is None:
        return out[0] + '<p class="miss">no astrometry (hetred astrom)</p>'
    off = s.offset_arcsec
    rows: list[tuple[str, H.Cell | str]] = []
    if s.header is not None:
        rows.append(("header RA, Dec, PA (deg)", f"{s.header[0]:.6f} {s.header[1]:+.6f} {s.header[2]:.3f}"))
    rows.append(("fitted RA, Dec, PA (deg)", f"{s.final[0]:.6f} {s.final[1]:+.6f} {s.final[2]:.3f}"))
    if off is not None:
        rows.append(("offset east, north (″)", f"{off[0]:+.2f} {off[1]:+.2f}"))
        rows.append(("offset (″)", H.num((off[0] ** 2 + off[1] ** 2) ** 0.5, st.range("astrom_offset"), ".2f")))
    if s.angoff is not None:
        rows.append(("rotation offset (deg)", f"{float(s.angoff):.3f}"))
    out.append(_kv(rows))
    ex = [[H.Cell(str(e.exp)), H.num(e.rms[0] if e.rms else None, st.range("astrom_rms"), ".3f"),
           H.num(e.rms[1] if e.rms else None, st.range("astrom_rms"), ".3f"),
           H.num(e.stars, st.range("astrom_stars"), "d"), H.num(e.norm, st.range("norm"), ".3f")]
          for e in s.exposures]
    out.append(H.table(["exposure", "rms x (″)", "rms y (″)", "stars", "norm.dat"], ex))
    figs = [H.figure(f.url(f.link(e.match_png, "astrom", f"{s.datevobs}_{e.match_png.name}")),
                     f"exposure {e.exp}: stars and offsets", width=320) for e in s.exposures if e.match_png]
    figs += [H.figure(f.url(f.link(p, "astrom", f"{s.datevobs}_{p.name}")), "rotation trials", width=320)
             for p in s.astrom_pngs]
    return "\n".join(out + figs)


def _fplane(f: Folder, s: ShotData) -> str:
    figs = [H.figure(f.url(f.link(e.fplane_png, "fplane")), f"exposure {e.exp} (1de.png)", width=420)
            for e in s.exposures if e.fplane_png is not None]
    return "<h2>Focal plane</h2>" + ("\n".join(figs) if figs else '<p class="miss">no focal-plane images '
                                                                  "(hetred sci)</p>")


def _throughput(f: Folder, s: ShotData, st: ReportSettings) -> str:
    out = ["<h2>Throughput</h2>"]
    if not s.tp:
        return out[0] + '<p class="miss">no throughput (hetred throughput)</p>'
    t = s.tp
    out.append(_kv([("FWHM (″)", H.num(t.get("fwhm"), st.range("fwhm"), ".3f")),
                    ("FWHM stars", H.num(t.get("fwhm_nstars"), None, "d")),
                    ("response_4540", H.num(t.get("response_4540"), st.range("response"), ".4f")),
                    ("stars used", H.num(t.get("nstars_used"), st.range("tp_stars"), "d")),
                    ("source", str(t.get("source", "–")))]))
    if s.curve is not None:
        at = {s.datevobs: float(t["response_4540"])} if t.get("response_4540") is not None else {}
        png = qaplots.response_png({s.datevobs: s.curve}, at)
        if png is not None:
            out.append(H.figure(f.url(f.image(f"{s.datevobs}_response.png", png)), "response curve"))
    if s.tp_png is not None:
        out.append(H.figure(f.url(f.link(s.tp_png, "throughput")), "stars' throughput (hetred throughput QA)",
                            width=480))
    return "\n".join(out)


def _fullsky(f: Folder, s: ShotData, st: ReportSettings) -> str:
    out = ["<h2>Full-field sky</h2>"]
    exps = [e for e in s.exposures if e.amps]
    if not exps:
        return out[0] + '<p class="miss">no amp.dat (hetred fullsky)</p>'
    out.append(f"<p>{s.n_red} amp row(s) flagged red by vred3 (Factor outside 0.7–1.1, Scale, W0; ds9.reg) "
               f"over {len(exps)} exposure(s).</p>")
    names = list(dict.fromkeys(a.name for e in exps for a in e.amps))
    by = {(e.exp, a.name): a for e in exps for a in e.amps}
    rows, rcls = [], []
    for n in names:
        cells: list[H.Cell] = [H.Cell(n, "l")]
        red = False
        for e in exps:
            a = by.get((e.exp, n))
            if a is None:
                cells += [H.Cell("–")] * 5
                continue
            red |= a.red
            cells += [H.num(a.factor, st.range("factor"), ".3f"), H.Cell(str(a.ncont)), H.num(a.scale, None, ".2f"),
                      H.num(a.w0, None, ".2f"), H.num(a.w1, None, ".2f")]
        rows.append(cells)
        rcls.append("red" if red else "")
    heads = ["amp"] + [f"e{e.exp} {c}" for e in exps for c in ("Factor", "N_c", "Scale", "W0", "W1")]
    red = [r for r, c in zip(rows, rcls) if c]
    if red:
        out.append("<h3>flagged amps</h3>" + H.table(heads, red, cls="small", row_cls=["red"] * len(red)))
    opened = " open" if len(names) <= 40 else ""
    out.append(f"<details{opened}><summary>amp.dat of every exposure ({len(names)} amps)</summary>"
               + H.table(heads, rows, cls="small", row_cls=rcls) + "</details>")
    out += [H.figure(f.url(f.link(e.fullsky_png, "fullsky")), f"exposure {e.exp}", width=420)
            for e in exps if e.fullsky_png is not None]
    return "\n".join(out)


def _detections(f: Folder, s: ShotData, st: ReportSettings) -> str:
    out = ["<h2>Detections</h2>"]
    if s.detect:
        rows = [[H.Cell(u, "l"), H.Cell(str(c.get("mc_lines", "–"))), H.Cell(str(c.get("detections", "–"))),
                 H.Cell(str(c.get("fibers", "–")))] for u, c in sorted(s.detect.items())]
        tot = sum(int(c.get("detections", 0) or 0) for c in s.detect.values())
        out.append(f"<p>{tot} detection(s) in {len(s.detect)} IFU(s) (hetred detect, .mc lines)"
                   + (f"; {s.continuum} continuum source(s)" if s.continuum is not None else "") + ".</p>")
        out.append(f"<details><summary>per IFU</summary>{H.table(['IFU', '.mc lines', 'detections', 'fibers'], rows)}"
                   "</details>")
    else:
        out.append('<p class="miss">no detections (hetred detect)</p>')
    if not s.reports:
        out.append('<p class="miss">no detection reports (hetred report detections --shot '
                   f"{H.esc(s.datevobs)})</p>")
        return "\n".join(out)
    assert s.report_db is not None
    db = f.link(s.report_db, "reports")
    out.append(f"<p>{len(s.reports)} report(s) (S/N ≥ {s.report_min_sn:g}): "
               f"{H.link(f.url(db), s.report_db.name)} (sqlite; docs/stages/report.md).</p>")
    png = qaplots.detections_png(s.reports, s.report_min_sn)
    if png is not None:
        out.append(H.figure(f.url(f.image(f"{s.datevobs}_detections.png", png)), "reported detections"))
    lay = f.layout
    have = _existing(lay, s, ("report_png", "report_pdf", "report_thumb"))
    thumbs, rows = [], []
    for k, r in enumerate(s.reports):
        did = int(r["detectid"])
        src = lay.path("report_png", month=s.month, datevobs=s.datevobs, detectid=did)
        if src not in have:
            continue
        full = f.url(f.link(src, "reports"))
        pdf = lay.path("report_pdf", month=s.month, datevobs=s.datevobs, detectid=did)
        pdf_link = H.link(f.url(f.link(pdf, "reports")), "pdf") if pdf in have else ""
        th = lay.path("report_thumb", month=s.month, datevobs=s.datevobs, detectid=did)
        if k < st.thumbnails_max and th in have:
            thumbs.append(f'<a href="{H.esc(full)}"><img src="{H.esc(f.url(f.link(th, "thumbs")))}" '
                          f'alt="{did}" loading="lazy">{did} S/N {r["sn"]:.1f}</a>')
        rows.append([H.Cell(f'<a href="{H.esc(full)}">{did}</a> {pdf_link}', "l", raw=True),
                     H.num(r["wave"], None, ".2f"), H.num(r["flux"], None, ".1f"), H.num(r["sn"], None, ".1f"),
                     H.num(r["linewidth"], None, ".2f"), H.num(r["chi2"], None, ".2f"),
                     H.num(r["ra"], None, ".6f"), H.num(r["dec"], None, "+.6f"), H.Cell(r["inputid"], "l")])
    if thumbs:
        more = (f" (the {st.thumbnails_max} of highest S/N; all in the table)"
                if len(s.reports) > st.thumbnails_max else "")
        out.append(f"<h3>Reports{more}</h3><div class=\"thumbs\">{''.join(thumbs)}</div>")
    out.append("<details><summary>every report</summary>" + H.table(
        ["detectid", "wave (Å)", "flux (1e-17)", "S/N", "σ (Å)", "χ²", "RA", "Dec", "inputid"], rows, cls="small")
        + "</details>")
    return "\n".join(out)


def _existing(lay, s: ShotData, keys: tuple[str, ...]) -> set:
    """The shot's report files that exist (one listing per folder, not a stat per report)."""
    out = set()
    for key in keys:
        out.update(lay.glob(key, month=s.month, datevobs=s.datevobs))
    return out


def shot_body(f: Folder, s: ShotData, st: ReportSettings) -> str:
    miss = ("<p class=\"miss\">missing: " + H.esc("; ".join(s.missing)) + "</p>") if s.missing else ""
    return "\n".join([miss, _astrometry(f, s, st), _fplane(f, s), _throughput(f, s, st), _fullsky(f, s, st),
                      _detections(f, s, st)])
