"""``index.html``: every figure and table of a report on one page, openable from disk.

Only relative links; no script, no external resource.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from dvms.report.figures import Figure
from dvms.report.tables import Table, format_value

__all__ = ["Section", "render_index"]

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}.note{color:#777;font-style:italic}
nav a{margin-right:1em}
"""


@dataclass(frozen=True)
class Section:
    """A titled group of figures; ``prefix`` is their directory relative to index.html."""

    title: str
    anchor: str
    figures: tuple[Figure, ...]
    prefix: str = ""


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ("metric", *table.columns))
    rows = []
    for name, values in table.rows:
        cells = "".join(f'<td class="num">{html.escape(format_value(v))}</td>' for v in values)
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure_html(fig: Figure, prefix: str) -> str:
    title = html.escape(fig.title)
    if not fig.files:
        return f'<p class="note">{title}: skipped — {html.escape(fig.note)}</p>'
    png = next(f for f in fig.files if f.endswith(".png"))
    links = " · ".join(
        f'<a href="{html.escape(prefix + f)}">{html.escape(f.rsplit(".", 1)[1].upper())}</a>'
        for f in fig.files
    )
    return (
        f'<figure><img src="{html.escape(prefix + png)}" alt="{title}">'
        f"<figcaption>{title} ({links})</figcaption></figure>"
    )


def render_index(
    title: str,
    runs: Sequence[tuple[str, str]],
    table: Table,
    table_files: Sequence[str],
    sections: Sequence[Section],
) -> str:
    """The page: runs (label, path), the metrics table, then each section's figures."""
    nav = " ".join(f'<a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a>'
                   for s in sections)
    run_list = "".join(
        f"<li><b>{html.escape(label)}</b> — <code>{html.escape(path)}</code></li>"
        for label, path in runs
    )
    files = " · ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in table_files)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<nav>{nav}</nav>",
        f"<h2>Runs</h2><ul>{run_list}</ul>",
        f'<h2 id="metrics">Metrics</h2><p>{files}</p>',
        _table_html(table),
    ]
    for section in sections:
        parts.append(f'<h2 id="{html.escape(section.anchor)}">{html.escape(section.title)}</h2>')
        parts.extend(_figure_html(f, section.prefix) for f in section.figures)
    parts.append("</body></html>\n")
    return "\n".join(parts)
