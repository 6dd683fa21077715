"""The listening report's HTML building blocks, shared by the run page and the sweep page (framegen.report.pages):
escaping, numbers, flags, players, links to audio and images, the document shell. Each returns a string of HTML.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import os
import re
import urllib.parse
from html import escape as _escape
from pathlib import Path

from framegen.report.collect import Clip
from framegen.report.style import CSS, JS

COLLAPSE_FLAGS = ("silent", "stuck", "static", "noise_like", "nonfinite")  # shown red; every other flag amber


def esc(value) -> str:
    """``value`` as text safe inside an element or a quoted attribute."""
    return _escape(str(value), quote=True)


def anchor(text: str) -> str:
    """An id made of ``text`` (lower-case letters, digits and dashes), for links within a page."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def number(v) -> str:
    """A metric or fact as shown: 4 significant digits, thousands separated, yes/no, a dash for None."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return "0" if v == 0 else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) or "–"
    return str(v)


def sort_value(v) -> str:
    """What a sortable table's cell sorts by (its data-v): the full number, "" for none or not finite."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, bool):
        return str(int(v))
    return repr(v) if isinstance(v, (int, float)) else str(v)


class Links:
    """Where the page's audio and images come from: relative URLs from the page's folder, or data URIs (``embed``:
    one file that can be mailed)."""

    MIME = {".wav": "audio/wav", ".png": "image/png", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
            ".flac": "audio/flac"}

    def __init__(self, page_dir: Path, embed: bool):
        self.page_dir, self.embed = Path(page_dir), embed

    def src(self, path: Path) -> str:
        if self.embed:
            mime = self.MIME.get(path.suffix.lower(), "application/octet-stream")
            return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
        return self.href(path)

    def image(self, path: Path, alt: str, cls: str = "") -> str:
        """An <img>; on a page with files beside it, a link to the full-size picture too (a phone shrinks it)."""
        cls = f' class="{cls}"' if cls else ""
        img = f'<img{cls} src="{self.src(path)}" alt="{esc(alt)}">'
        return img if self.embed else f'<a href="{self.href(path)}">{img}</a>'

    def href(self, path: Path) -> str:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.page_dir))
        return urllib.parse.quote(Path(rel).as_posix())


class Ids:
    """Fresh element ids for one page: ``ids("p")`` is p1, then p2, ..."""

    def __init__(self):
        self.n = 0

    def __call__(self, prefix="c") -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def flag_badges(flags, note: str = "") -> str:
    """A clip's flags as badges: a collapse (COLLAPSE_FLAGS) red, any other amber, "no flags" green; ``note`` (or
    "not scored") grey when it has no score (``flags`` None)."""
    if flags is None:
        return f'<span class="flag none">{esc(note or "not scored")}</span>'
    if not flags:
        return '<span class="flag ok">no flags</span>'
    return "".join(f'<span class="flag {"bad" if f in COLLAPSE_FLAGS else "warn"}">{esc(f)}</span>' for f in flags)


def metric_list(metrics: dict | None, docs: dict) -> str:
    """Every metric as name and value, each name with its one-line meaning from ``docs`` as a tooltip."""
    if not metrics:
        return ""
    items = []
    for k, v in metrics.items():
        title = f' title="{esc(docs[k])}"' if k in docs else ""
        items.append(f'<div><span class="k"{title}>{esc(k)}</span> <span class="v">{esc(number(v))}</span></div>')
    return f'<div class="metrics">{"".join(items)}</div>'


def facts_line(facts: dict) -> str:
    """A muted line "key value · key value" of the facts that are known (None ones left out)."""
    parts = [f"{esc(k)} {esc(number(v))}" for k, v in facts.items() if v is not None]
    return f'<p class="muted">{" · ".join(parts)}</p>' if parts else ""


def player(clip: Clip, links: Links, ids: Ids, label: str | None = None, labelled_by: str | None = None) -> str:
    """An <audio> player with a visible label: its own caption, or the heading ``labelled_by`` names; a missing
    clip is a line saying why."""
    label = label or clip.title
    if not clip.exists:
        return f'<p class="gone">{esc(label)}: {esc(clip.note or "missing")}</p>'
    audio = f'<audio controls preload="metadata" aria-labelledby="{{}}" src="{links.src(clip.path)}"></audio>'
    if labelled_by:
        return f'<figure class="player">{audio.format(labelled_by)}</figure>'
    cid = ids("p")
    return (f'<figure class="player"><figcaption id="{cid}">{esc(label)} <span class="muted">· '
            f'{clip.seconds:.1f} s</span></figcaption>{audio.format(cid)}</figure>')


def key_values(pairs) -> str:
    """A definition list of (name, HTML) pairs: the values are HTML already, the names are escaped."""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def missing_section(missing: list[str]) -> str:
    """The "What is missing" section (id missing), one item per sentence; nothing when nothing is."""
    if not missing:
        return ""
    items = "".join(f"<li>{esc(m)}</li>" for m in missing)
    return f'<section class="missing" id="missing"><h2>What is missing</h2><ul>{items}</ul></section>'


def contents(entries) -> str:
    """The page's table of contents from (anchor, title) pairs."""
    items = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in entries)
    return f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{items}</ol></nav>'


def document(title: str, body: str) -> str:
    """The whole page around ``body``: head, the report's CSS and script inlined, and a footer saying which
    framegen wrote it, when, and how to refresh it."""
    from framegen import __version__

    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="framegen {esc(__version__)}">
<link rel="icon" href="data:,">
<title>{esc(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
{body}
<footer class="muted">Written by framegen {esc(__version__)} on {esc(stamp)} from the files in this directory; refresh
with <code>framegen report</code>.</footer>
</main>
<script>{JS}</script>
</body>
</html>
"""
