"""A line chart as inline SVG, drawn on the server: like rate per model version over time.

No JavaScript and no charting library: the admin page embeds the markup. The chart is
accessible by construction: ``role="img"`` with a ``<title>`` and a ``<desc>`` that says in words
what it shows, each point has its own ``<title>`` (a tooltip, read by screen readers), lines
differ by dash pattern as well as colour, and the page puts the same numbers in a table.
Pure: plain data in, a string out (every text is escaped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 720, 300
MARGIN = {"left": 48, "right": 150, "top": 16, "bottom": 36}
# Okabe–Ito colours (distinguishable with colour-blindness) and dash patterns, in turn.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")


@dataclass(frozen=True)
class Point:
    at: datetime
    likes: int
    thumbs: int

    @property
    def rate(self) -> float:
        return self.likes / self.thumbs if self.thumbs else 0.0


def like_rate_svg(series: dict[str, list[Point]], title: str, desc: str) -> str:
    """An SVG line chart of like rate (0 to 1) per series over time."""
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]
    times = [p.at.timestamp() for points in series.values() for p in points]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    span = (t1 - t0) or 1.0

    def x(at: datetime) -> float:
        return MARGIN["left"] + plot_w * ((at.timestamp() - t0) / span if t1 > t0 else 0.5)

    def y(rate: float) -> float:
        return MARGIN["top"] + plot_h * (1.0 - rate)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="lr-title lr-desc" '
        f'font-family="sans-serif" font-size="11">',
        f'<title id="lr-title">{escape(title)}</title>',
        f'<desc id="lr-desc">{escape(desc)}</desc>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):  # horizontal grid and the y axis
        parts.append(
            f'<line x1="{MARGIN["left"]}" x2="{MARGIN["left"] + plot_w}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}" stroke="#ddd"/>'
            f'<text x="{MARGIN["left"] - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">'
            f"{tick:.0%}</text>"
        )
    if times:
        for at, anchor in ((t0, "start"), (t1, "end")):  # the first and last time
            label = datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
            px = MARGIN["left"] + plot_w * ((at - t0) / span if t1 > t0 else 0.5)
            parts.append(
                f'<text x="{px:.1f}" y="{HEIGHT - 12}" text-anchor="{anchor}">{label}</text>'
            )
    else:
        parts.append(
            f'<text x="{MARGIN["left"] + plot_w / 2}" y="{MARGIN["top"] + plot_h / 2}" '
            'text-anchor="middle">No thumbs in this period.</text>'
        )
    for n, (name, points) in enumerate(sorted(series.items())):
        colour, dash = COLOURS[n % len(COLOURS)], DASHES[n % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        coords = " ".join(f"{x(p.at):.1f},{y(p.rate):.1f}" for p in points)
        parts.append(f'<g aria-label="{escape(name)}">')
        if len(points) > 1:
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                f'stroke-width="2"{dash_attr}/>'
            )
        for p in points:
            parts.append(
                f'<circle cx="{x(p.at):.1f}" cy="{y(p.rate):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}, {p.at:%Y-%m-%d %H:%M}: {p.rate:.0%} "
                f"({p.likes} of {p.thumbs} thumbs up)</title></circle>"
            )
        legend_y = MARGIN["top"] + 14 * n + 6
        legend_x = WIDTH - MARGIN["right"] + 12
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 22}" y1="{legend_y}" y2="{legend_y}" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<text x="{legend_x + 28}" y="{legend_y + 4}">{escape(name[:20])}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
