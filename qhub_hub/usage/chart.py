"""An SVG bar chart, drawn here (no plotting library, no script, no external service): one group's
daily values over a period, each bar stacked by profile."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]


def stacked_bars(title: str, days: Sequence[str], series: Mapping[str, Sequence[float]], unit: str,
                 width: int = 720, height: int = 220) -> str:
    """`series`: profile -> one value per day. Returns an <svg> element with a legend."""
    left, right, top, bottom = 56, 150, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    peak = max(totals, default=0.0) or 1.0
    bar_w = plot_w / max(1, len(days))
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="qhub-usage-chart" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title, quote=True)}">',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold">{esc(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{top + 4}" font-size="10" text-anchor="end">{peak:.2f}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
             f'<text x="12" y="{top + plot_h / 2}" font-size="10" transform="rotate(-90 12 '
             f'{top + plot_h / 2})" text-anchor="middle">{esc(unit)}</text>']
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    for i, day in enumerate(days):
        y = top + plot_h
        for name, values in series.items():
            value = values[i]
            if value <= 0:
                continue
            h = value / peak * plot_h
            y -= h
            parts.append(f'<rect x="{left + i * bar_w + 1:.1f}" y="{y:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
                         f'height="{h:.1f}" fill="{colors[name]}" data-profile="{esc(name, quote=True)}" '
                         f'data-day="{esc(day, quote=True)}" data-value="{value:.4f}"><title>{esc(day)} '
                         f'{esc(name)}: {value:.2f} {esc(unit)}</title></rect>')
        if len(days) <= 31 and (i % 5 == 0 or i == len(days) - 1):
            parts.append(f'<text x="{left + (i + 0.5) * bar_w:.1f}" y="{top + plot_h + 14}" font-size="9" '
                         f'text-anchor="middle">{esc(day[-5:])}</text>')
    for j, name in enumerate(series):
        y = top + 12 + j * 16
        parts.append(f'<rect x="{left + plot_w + 12}" y="{y - 9}" width="10" height="10" fill="{colors[name]}"/>')
        parts.append(f'<text x="{left + plot_w + 26}" y="{y}" font-size="11">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
