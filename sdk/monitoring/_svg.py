"""Small inline SVG charts for the HTML report: no library, no script, readable offline.

Each function returns an ``<svg>`` element as text, with a ``<title>`` for screen readers and
every label escaped. Colours are CSS classes (``ok``, ``bad``, ``warn``, ``muted``) styled by
the report's stylesheet.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import attrs

ROW = 22
LABEL_WIDTH = 230
BAR_WIDTH = 380
VALUE_WIDTH = 210


@attrs.frozen
class Bar:
    """One bar: a label, its segments ``(value, css class)`` stacked left to right, and its text."""

    label: str
    segments: tuple[tuple[float, str], ...]
    text: str
    marker: float | None = None
    """Draw a tick at this value (e.g. the expected duration)."""


def _num(x: float) -> str:
    return f"{x:.1f}"


def hbars(title: str, bars: Sequence[Bar], *, scale: float | None = None, guide: tuple[float, str] | None = None) -> str:
    """Horizontal bars, one row each; ``guide`` draws a dashed vertical line ``(value, label)``."""
    if not bars:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    # The scale follows the bars; a marker far beyond them (a generous expected duration) is
    # drawn at the right edge with an arrow rather than squashing every bar.
    top = scale or max([sum(v for v, _ in b.segments) for b in bars] + [guide[0] if guide else 0] + [1e-9])
    height = ROW * len(bars) + 28
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, bar in enumerate(bars):
        y = 8 + i * ROW
        out.append(f'<text class="label" x="{LABEL_WIDTH - 8}" y="{y + 14}" text-anchor="end">{escape(_clip(bar.label, 34))}</text>')
        out.append(f'<rect class="track" x="{LABEL_WIDTH}" y="{y + 3}" width="{BAR_WIDTH}" height="{ROW - 8}" rx="2"/>')
        x = float(LABEL_WIDTH)
        for value, css in bar.segments:
            w = max(0.0, min(value / top, 1.0) * BAR_WIDTH)
            if w > 0:
                out.append(f'<rect class="{css}" x="{_num(x)}" y="{y + 3}" width="{_num(w)}" height="{ROW - 8}" rx="2"/>')
            x += w
        if bar.marker is not None and bar.marker <= top:
            mx = LABEL_WIDTH + bar.marker / top * BAR_WIDTH
            out.append(f'<line class="marker" x1="{_num(mx)}" x2="{_num(mx)}" y1="{y}" y2="{y + ROW - 2}"/>')
        elif bar.marker is not None:
            ex = LABEL_WIDTH + BAR_WIDTH
            out.append(f'<path class="marker-off" d="M{ex - 8} {y + 5} L{ex - 1} {y + 11} L{ex - 8} {y + 17} Z"/>')
        out.append(f'<text class="value" x="{LABEL_WIDTH + BAR_WIDTH + 8}" y="{y + 14}">{escape(bar.text)}</text>')
    if guide is not None:
        gx = LABEL_WIDTH + min(guide[0] / top, 1.0) * BAR_WIDTH
        bottom = 8 + ROW * len(bars)
        out.append(f'<line class="guide" x1="{_num(gx)}" x2="{_num(gx)}" y1="4" y2="{bottom}"/>')
        out.append(f'<text class="guide-label" x="{_num(gx)}" y="{bottom + 14}" text-anchor="middle">{escape(guide[1])}</text>')
    out.append("</svg>")
    return "".join(out)


def columns(title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]]) -> str:
    """Stacked vertical columns, one per label; ``series`` is ``(name, css class, values)``.

    A legend names the series.
    """
    if not labels:
        return f'<p class="empty">{escape(title)}: nothing to show.</p>'
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))]
    top = max(totals + [1])
    plot_h, left, gap = 160, 40, 4
    col_w = max(8.0, min(48.0, 640 / len(labels) - gap))
    legend_width = left + sum(24 + 7 * len(name) for name, _, _ in series)
    width = int(max(left + len(labels) * (col_w + gap) + 20, legend_width))
    height = plot_h + 70
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    out.append(f'<line class="axis" x1="{left}" x2="{width - 10}" y1="{plot_h + 10}" y2="{plot_h + 10}"/>')
    out.append(f'<text class="label" x="{left - 6}" y="{18}" text-anchor="end">{int(top)}</text>')
    out.append(f'<text class="label" x="{left - 6}" y="{plot_h + 12}" text-anchor="end">0</text>')
    every = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        x = left + i * (col_w + gap)
        base = plot_h + 10.0
        for _name, css, values in series:
            h = values[i] / top * plot_h
            if h > 0:
                base -= h
                out.append(f'<rect class="{css}" x="{_num(x)}" y="{_num(base)}" width="{_num(col_w)}" height="{_num(h)}">'
                           f'<title>{escape(label)}: {values[i]:g} {escape(_name)}</title></rect>')
        if i % every == 0:
            out.append(f'<text class="tick" x="{_num(x + col_w / 2)}" y="{plot_h + 26}" text-anchor="middle">{escape(label)}</text>')
    lx = left
    for name, css, _values in series:
        out.append(f'<rect class="{css}" x="{lx}" y="{plot_h + 44}" width="12" height="12"/>')
        out.append(f'<text class="label" x="{lx + 16}" y="{plot_h + 54}">{escape(name)}</text>')
        lx += 24 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
