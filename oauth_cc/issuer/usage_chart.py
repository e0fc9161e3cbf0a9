"""Issuer side: a server-rendered SVG bar chart for the admin: no script, no stylesheet, no external asset.

Every text that goes into the markup is escaped; the numbers are ints formatted here. Each
bar is a ``<rect>`` with a ``<title>`` (the browser's tooltip: "label: N tokens"), and every
bar is drawn, a zero as a rect of height 0, so the chart always has one bar per period.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 720
HEIGHT = 140
MARGIN_LEFT = 44
MARGIN_BOTTOM = 20
MARGIN_TOP = 8


def bar_chart(
    points: Sequence[tuple[str, int]], *, title: str, axis_labels: Sequence[tuple[int, str]] = ()
) -> SafeString:
    """An inline SVG of one bar per ``(label, value)``; ``axis_labels`` puts ``text`` under bar ``index``."""
    plot_width = WIDTH - MARGIN_LEFT
    plot_height = HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    peak = max((value for _, value in points), default=0)
    scale = plot_height / peak if peak else 0.0
    slot = plot_width / max(1, len(points))
    bar = max(1.0, slot * 0.8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="oauth-cc-usage-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-label="{escape(title)}" style="max-width:100%;height:auto">',
        f"<title>{escape(title)}</title>",
        # Axis: the baseline, and the peak value at the top left.
        f'<line x1="{MARGIN_LEFT}" y1="{HEIGHT - MARGIN_BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - MARGIN_BOTTOM}" '
        'stroke="#999" stroke-width="1"/>',
        f'<text x="{MARGIN_LEFT - 4}" y="{MARGIN_TOP + 10}" text-anchor="end" font-size="11" '
        f'fill="#666">{int(peak)}</text>',
        f'<text x="{MARGIN_LEFT - 4}" y="{HEIGHT - MARGIN_BOTTOM}" text-anchor="end" font-size="11" '
        'fill="#666">0</text>',
    ]
    for index, (label, value) in enumerate(points):
        value = int(value)
        height = value * scale
        x = MARGIN_LEFT + index * slot + (slot - bar) / 2
        y = HEIGHT - MARGIN_BOTTOM - height
        parts.append(
            f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" height="{height:.2f}" fill="#417690" '
            f'data-value="{value}"><title>{escape(label)}: {value} tokens</title></rect>'
        )
    for index, text in axis_labels:
        x = MARGIN_LEFT + index * slot + slot / 2
        parts.append(
            f'<text x="{x:.2f}" y="{HEIGHT - 5}" text-anchor="middle" font-size="11" '
            f'fill="#666">{escape(text)}</text>'
        )
    parts.append("</svg>")
    # Safe: every interpolated text above went through escape(); the rest are numbers.
    return mark_safe("".join(parts))  # noqa: S308
