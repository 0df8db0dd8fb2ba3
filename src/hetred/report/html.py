"""Static HTML for the report pages: escaping, tables with marked numbers, the page frame (one
inline style sheet: no scripts, no fonts, no external resources), and the checks the tests and
``hetred demo`` make of a folder of pages (every link and image resolves, page weight).
"""
from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CSS = """
body{font:14px/1.35 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{background:#243447;color:#fff;padding:10px 18px}header a{color:#cfe3ff}
header h1{font-size:20px;margin:0 0 4px}nav a{margin-right:14px}
main{padding:8px 18px 40px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;background:#fff}
th,td{border:1px solid #d4d4d4;padding:2px 7px;text-align:right;white-space:nowrap}
th{background:#eef1f5;text-align:center}td.l{text-align:left;white-space:normal}
td.bad{background:#ffd7d5;color:#9b0000;font-weight:600}td.ok{background:#e3f6e3}
td.warn{background:#fff4cc}tr.red td{background:#ffe9e8}
.fig{display:inline-block;margin:4px 8px 8px 0;vertical-align:top;font-size:12px}
.fig img{max-width:100%;border:1px solid #ccc;background:#fff}
.thumbs a{display:inline-block;margin:2px;font-size:11px;text-align:center;color:#333;text-decoration:none}
.thumbs img{display:block;border:1px solid #bbb}
.note{color:#555;font-size:12px}.miss{color:#9b0000}
details{margin:3px 0}summary{cursor:pointer}
.small td{font-size:12px}.kv td:first-child{text-align:left;color:#444}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def href(path: Path, start: Path) -> str:
    """A relative link from the folder ``start`` to ``path`` (forward slashes, URL-quoted)."""
    from urllib.parse import quote

    p, s = str(path), str(start).rstrip("/") + "/"
    rel = p[len(s):] if p.startswith(s) else Path(os.path.relpath(p, start)).as_posix()
    return quote(rel)


def fmt(v: object, spec: str = ".3g") -> str:
    """A number as text (``spec`` ending in d: rounded to a whole number); None and NaN as –."""
    if v is None:
        return "–"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not math.isfinite(float(v)):
            return "–"
        return format(round(float(v)), spec) if spec.endswith("d") else format(float(v), spec)
    return str(v)


@dataclass(frozen=True)
class Cell:
    """A table cell: text (escaped unless ``raw``), class (``bad``, ``ok``, ``warn``, ``l``), tooltip."""

    text: str
    cls: str = ""
    title: str = ""
    raw: bool = False

    def render(self, tag: str = "td") -> str:
        attrs = (f' class="{self.cls}"' if self.cls else "") + (f' title="{esc(self.title)}"' if self.title else "")
        return f"<{tag}{attrs}>{self.text if self.raw else esc(self.text)}</{tag}>"


def num(v: float | None, rng: tuple[float, float] | None = None, spec: str = ".3g") -> Cell:
    """A number, marked ``bad`` (with its usual range as tooltip) when outside ``rng``."""
    text = fmt(v, spec)
    if rng is None or v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return Cell(text)
    lo, hi = rng
    inside = lo <= float(v) <= hi
    span = f"{lo:g}–{hi:g}" if math.isfinite(hi) else f"≥ {lo:g}"
    return Cell(text, "" if inside else "bad", f"usual range {span}")


def outside(v: float | None, rng: tuple[float, float]) -> bool:
    return v is not None and math.isfinite(float(v)) and not (rng[0] <= float(v) <= rng[1])


def table(headers: list[str], rows: list[list[Cell | str]], cls: str = "", row_cls: list[str] | None = None) -> str:
    out = [f'<table class="{cls}">' if cls else "<table>"]
    if headers:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
    for k, r in enumerate(rows):
        rc = row_cls[k] if row_cls and k < len(row_cls) and row_cls[k] else ""
        out.append((f'<tr class="{rc}">' if rc else "<tr>")
                   + "".join((c if isinstance(c, Cell) else Cell(str(c))).render() for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def link(url: str, text: str) -> str:
    return f'<a href="{esc(url)}">{esc(text)}</a>'


def figure(src: str, caption: str, width: int | None = None, target: str | None = None, lazy: bool = False) -> str:
    w = f' width="{width}"' if width else ""
    lz = ' loading="lazy"' if lazy else ""
    img = f'<img src="{esc(src)}" alt="{esc(caption)}"{w}{lz}>'
    return (f'<div class="fig"><a href="{esc(target or src)}">{img}</a><br>{esc(caption)}</div>')


def page(title: str, body: str, nav: list[tuple[str, str]], subtitle: str = "") -> str:
    """A whole page: header with navigation, the body, the inline style sheet."""
    links = " ".join(link(u, t) for u, t in nav)
    sub = f"<div>{esc(subtitle)}</div>" if subtitle else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head>\n<body><header><h1>{esc(title)}</h1>{sub}<nav>{links}</nav></header>\n"
            f"<main>\n{body}\n</main></body></html>\n")


# ------------------------------------------------------------------------------------------------
# checks of a folder of pages

class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []          #: (attribute, value)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if v is None:
                continue
            if k in ("href", "src") or (k == "srcset"):
                self.refs.append((f"{tag}.{k}", v))
            if k == "id":
                self.ids.add(v)


_ATTR = re.compile(r'<(\w+)\b[^>]*?\s(href|src|srcset)="([^"]*)"')


def references(page_path: Path, fast: bool = False) -> list[tuple[str, str]]:
    """Every (tag.attribute, value) of href/src/srcset in a page: parsed with the standard
    library's HTML parser, or with ``fast`` by a regular expression that reads the pages this
    package writes (one quoted link attribute per tag; values unescaped)."""
    text = page_path.read_text(encoding="utf-8")
    if fast:
        return [(f"{m.group(1)}.{m.group(2)}", html.unescape(m.group(3))) for m in _ATTR.finditer(text)]
    p = _Refs()
    p.feed(text)
    return p.refs


def resolve(page_path: Path, ref: str) -> Path | None:
    """The file a relative reference names, None for an in-page anchor."""
    u = urlsplit(ref)
    if not u.path:
        return None
    return page_path.parent / unquote(u.path)


def broken_links(folder: Path, fast: bool = False) -> list[str]:
    """``page: reference`` for every link or image of the folder's pages that does not resolve
    to a file, and every external one (http, https, //, data is allowed for nothing). ``fast``:
    :func:`references` by a regular expression (what the units use; the tests parse)."""
    bad = []
    top = os.path.normpath(folder) + os.sep
    for pg in sorted(Path(folder).rglob("*.html")):
        for attr, ref in references(pg, fast):
            u = urlsplit(ref)
            if u.scheme or ref.startswith("//"):
                bad.append(f"{pg.name}: external {attr} {ref}")
                continue
            target = resolve(pg, ref)
            if target is None:
                continue
            if not os.path.normpath(target).startswith(top):
                bad.append(f"{pg.name}: {attr} {ref} is outside the folder")
            elif not target.is_file():
                bad.append(f"{pg.name}: {attr} {ref} does not exist")
    return bad


def page_weight(page_path: Path) -> int:
    """Bytes a browser loads for a page: the HTML and every image it shows (lazy ones too)."""
    total = page_path.stat().st_size
    seen = set()
    for attr, ref in references(page_path, fast=True):
        if not attr.endswith(".src"):
            continue
        t = resolve(page_path, ref)
        if t is not None and t not in seen and t.is_file():
            seen.add(t)
            total += t.stat().st_size
    return total
