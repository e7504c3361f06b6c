"""Server-rendered SVG charts (pygal) for the insights dashboard: no JavaScript, no inline script,
served as ``image/svg+xml`` from their own address so the page's Content-Security-Policy stays strict."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence

import pygal  # type: ignore[import-untyped]
from pygal.style import Style  # type: ignore[import-untyped]

# pygal adds a legacy import hook for its map plugins (unused here) that lacks ``find_spec``; every
# import reaching it warns, and warnings are errors in the tests. Take it out again.
sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, pygal.PluginImportFixer)]

# pygal writes its tooltip configuration as an inline script even with no scripts to load; an
# image never runs it, and we drop it so the file carries no script at all.
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#c0392b",
    colors=("#2c6e91", "#e08e2b", "#5a9e4b", "#8e5ea2", "#c0392b"),
    font_family="sans-serif",
)
# Served with this policy instead of the page one: the image may style itself, nothing else.
SVG_HEADERS = {
    "Content-Type": "image/svg+xml; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


def _config(title: str, line: float | None, unit: str) -> dict:
    config: dict = dict(
        js=[],
        disable_xml_declaration=True,
        title=title,
        style=STYLE,
        width=720,
        height=360,
        x_label_rotation=30,
        truncate_label=18,
        print_values=False,
        legend_at_bottom=True,
        value_formatter=lambda v: f"{v:g}{unit}" if v is not None else "",
    )
    if line is not None:
        # The alert line is a major guide: drawn stronger than the others, labelled with its value.
        config.update(y_labels_major=[line], show_minor_y_labels=True, include_x_axis=True)
    return config


def bar(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    line: float | None = None,
    unit: str = "",
    stacked: bool = False,
) -> str:
    chart = (pygal.StackedBar if stacked else pygal.Bar)(**_config(title, line, unit))
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    if line is not None:
        top = max([v for values in series.values() for v in values if v is not None] + [line])
        step = max(round(top / 5, 1), 0.1)
        marks = sorted({round(step * i, 1) for i in range(int(top / step) + 2)} | {line})
        chart.y_labels = marks
    return _SCRIPT.sub("", chart.render())


def line(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, unit: str = "") -> str:
    chart = pygal.Line(**_config(title, None, unit))
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _SCRIPT.sub("", chart.render())
