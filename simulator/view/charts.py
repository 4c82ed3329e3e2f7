"""Inline SVG charts drawn in Python: no chart library and no script, so they show from
``file://`` and in a page with scripts off. Labels pass through ``Markup.format``, which escapes."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

BAR_COLOURS = {
    "Natural Session End": "#2f855a",
    "Max Turns Reached": "#b7791f",
    "Repetition Loop": "#c05621",
    "Error": "#c53030",
    "Interrupted": "#718096",
}
DEFAULT_COLOUR = "#4a5fa8"
_ROW = 26
_WIDTH = 520
_CHAR_W = 7.0
"""Width of a label character at the charts' 12 px font, a little generous."""


def bar_chart(rows: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """Horizontal bars, one row per label, the value written after each bar."""
    if not rows:
        return Markup('<p class="empty">none</p>')
    top = max(value for _, value in rows) or 1
    label_w = round(min(max(len(label) for label, _ in rows) * _CHAR_W + 12, _WIDTH / 2))
    span = _WIDTH - label_w - 50
    height = _ROW * len(rows) + 4
    parts = [
        Markup(
            '<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}"><title>{t}</title>'
        ).format(w=_WIDTH, h=height, t=title)
    ]
    for row, (label, value) in enumerate(rows):
        y = row * _ROW + 4
        width = max(round(span * value / top), 2 if value else 0)
        parts.append(
            Markup(
                '<text x="{lx}" y="{ty}" text-anchor="end" class="label">{label}</text>'
                '<rect x="{x}" y="{y}" width="{bw}" height="18" rx="3" fill="{c}"></rect>'
                '<text x="{vx}" y="{ty}" class="value">{value}</text>'
            ).format(
                lx=label_w - 8,
                ty=y + 13,
                label=label,
                x=label_w,
                y=y,
                bw=width,
                c=BAR_COLOURS.get(label, DEFAULT_COLOUR),
                vx=label_w + width + 6,
                value=value,
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def histogram(values: Sequence[int], *, title: str, bins: int = 24) -> Markup:
    """Vertical bars of how many values fall in each range (one value a bar when they fit)."""
    if not values:
        return Markup('<p class="empty">none</p>')
    low, high = min(values), max(values)
    step = max(1, -(-(high - low + 1) // bins))
    counts = [0] * ((high - low) // step + 1)
    for value in values:
        counts[(value - low) // step] += 1
    plot_h, base = 120, 140
    bar_w = min(36, (_WIDTH - 40) // len(counts))
    top = max(counts)
    parts = [
        Markup(
            '<svg class="chart" role="img" viewBox="0 0 {w} 184" width="{w}" height="184"><title>{t}</title>'
        ).format(w=_WIDTH, t=title)
    ]
    for i, count in enumerate(counts):
        x = 30 + i * bar_w
        h = round(plot_h * count / top)
        start = low + i * step
        label = str(start) if step == 1 else f"{start}–{start + step - 1}"
        parts.append(
            Markup(
                '<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="2" fill="{c}"><title>{label} messages: '
                "{n} sessions</title></rect>"
            ).format(x=x + 1, y=base - h, w=bar_w - 2, h=h, c=DEFAULT_COLOUR, label=label, n=count)
        )
        if count:
            parts.append(
                Markup('<text x="{x}" y="{y}" text-anchor="middle" class="value">{n}</text>').format(
                    x=x + bar_w / 2, y=base - h - 3, n=count
                )
            )
        if i % max(1, len(counts) // 8) == 0 or i == len(counts) - 1:
            parts.append(
                Markup('<text x="{x}" y="{y}" text-anchor="middle" class="label">{label}</text>').format(
                    x=x + bar_w / 2, y=base + 16, label=label
                )
            )
    parts.append(
        Markup(
            '<line x1="28" y1="{b}" x2="{x2}" y2="{b}" class="axis"></line>'
            '<text x="30" y="{ly}" class="label">messages per session</text>'
            "</svg>"
        ).format(b=base + 0.5, x2=30 + len(counts) * bar_w, ly=base + 38)
    )
    return Markup("").join(parts)
