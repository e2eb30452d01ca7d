"""REPORT.html: the report's Markdown turned into one self-contained HTML file, with every
figure embedded as base64 PNG, for sharing. Handles the subset the report writes: headings,
paragraphs, bullet lists, pipe tables, images, **bold** and `code`."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;"
         "line-height:1.4}table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}"
         "img{max-width:100%}code{background:#f4f4f4}")


def inline(text: str) -> str:
    """Escape, then **bold** and `code` (a backslash-escaped pipe becomes a pipe)."""
    text = html.escape(text.replace("\\|", "|"))
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def embedded_image(alt: str, source: str, base: Path) -> str:
    path = base / source
    if not path.is_file():
        return f"<p>[missing figure {html.escape(source)}]</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def markdown_to_html(text: str, base: Path, title: str = "Reproduction report") -> str:
    """The Markdown ``text`` as a standalone HTML page; images are read relative to ``base``."""
    out, blocks = [], re.split(r"\n\s*\n", text.strip())
    for block in blocks:
        lines = block.splitlines()
        heading = re.fullmatch(r"(#{1,6}) (.*)", block.strip())
        image = re.fullmatch(r"!\[(.*?)\]\((.*?)\)", block.strip())
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif image:
            out.append(embedded_image(image.group(1), image.group(2), Path(base)))
        elif all(line.startswith("|") for line in lines) and len(lines) >= 2:
            header, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
            rows = ["<tr>" + "".join(f"<th>{inline(c)}</th>" for c in header) + "</tr>"]
            rows += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>"
                     for row in body]
            out.append("<table>" + "".join(rows) + "</table>")
        elif all(line.startswith("- ") for line in lines):
            out.append("<ul>" + "".join(f"<li>{inline(line[2:])}</li>" for line in lines)
                       + "</ul>")
        else:
            out.append(f"<p>{inline(' '.join(lines))}</p>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(out)
            + "\n</body></html>\n")
