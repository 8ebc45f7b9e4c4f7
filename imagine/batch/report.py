"""The end-of-run report: ``report.json`` (figures) and ``report.html`` (a contact sheet).

The contact sheet works offline and from a file: thumbnails are inline
``data:`` JPEGs, the style sheet is inline, there is no script, and a
Content-Security-Policy forbids any other request. Every string that came
from a user or a model (ids, prompts, messages, paths) is escaped.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from html import escape
from typing import Any, BinaryIO

from PIL import Image

from imagine.batch.destination import Destination
from imagine.batch.manifest import Manifest
from imagine.batch.state import BatchState

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
THUMB_PX = 160  # longest side of a contact-sheet thumbnail


def summarize(
    manifest: Manifest,
    state: BatchState,
    out: str,
    context: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """Counts over the whole batch (all runs so far) and figures of this run."""
    records = state.items
    status = Counter(r.status for r in records.values())
    failures: list[dict[str, Any]] = [
        {"id": item_id, "line": r.line, **r.error}
        for item_id, r in records.items()
        if r.status == "failed" and r.error
    ]
    failures += [
        {"id": bad["id"], "line": bad["line"], "code": bad["code"], "message": bad["message"]}
        for bad in state.invalid_lines
    ]
    failures.sort(key=lambda f: f["line"])
    return {
        "status": run["status"],
        "manifest": str(manifest.path),
        "out": out,
        "settings": context,
        "notes": list(run.get("notes", [])),
        "items": {
            "total": len(records) + len(state.invalid_lines),
            "done": status["done"],
            "failed": status["failed"] + len(state.invalid_lines),
            "pending": status["pending"],
            "invalid_lines": len(state.invalid_lines),
            "already_done": run["items_already_done"],
        },
        "images": {
            "total": sum(r.images for r in records.values()),
            "done": sum(r.done for r in records.values()),
            "written_this_run": run["images_written"],
        },
        "failures_by_code": dict(sorted(Counter(f["code"] for f in failures).items())),
        "failures": failures,
        "timings_s": run["timings_s"],
        "wall_s": run["wall_s"],
        "images_per_minute": run["images_per_minute"],
        "peak_rss_mib": run["peak_rss_mib"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "runs": len(state.runs),
    }


def thumbnail_uri(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as source:
        img = source.convert("RGB")
    img.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;margin:1.4em 0 .3em}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
td:nth-child(-n+3){white-space:nowrap}
.item{border-top:1px solid #ddd;padding:.4em 0}
.failed h2{color:#a00} .pending h2{color:#a60}
.sheet{display:flex;flex-wrap:wrap;gap:.6em}
figure{margin:0;width:160px;font-size:12px}
figure img{display:block;max-width:160px;max-height:160px;background:#eee}
.err{color:#a00;font-family:monospace}
.note{color:#666}
"""


def write_html(
    f: BinaryIO,
    manifest: Manifest,
    state: BatchState,
    out: Destination,
    made: dict[str, set[int]],
    report: dict[str, Any],
) -> None:
    """Stream the contact sheet into ``f``: one image at a time, so memory stays flat.
    ``made``: each item's images that are complete in ``out``."""
    _head(f, report)
    for item in manifest.items:
        record = state.items[item.id]
        _put(f, f'<section class="item {escape(record.status)}">')
        _put(
            f,
            f"<h2>{escape(item.id)} <span class=note>line {item.line} · "
            f"{escape(record.status)} · {record.done}/{record.images} images</span></h2>",
        )
        if record.error:
            _put(
                f,
                f"<p class=err>{escape(record.error['code'])}: "
                f"{escape(record.error['message'])}</p>",
            )
        _put(f, "<div class=sheet>")
        for k in sorted(made.get(item.id, ())):
            png, meta = out.read(f"{item.id}/{k}.png"), out.read(f"{item.id}/{k}.json")
            if png is not None and meta is not None:
                _figure(f, png, json.loads(meta), k)
        _put(f, "</div></section>")
    _put(f, "</body></html>\n")


def _head(f: BinaryIO, report: dict[str, Any]) -> None:
    items, images = report["items"], report["images"]
    _put(
        f,
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>imagine batch: {escape(report['manifest'])}</title>"
        f"<style>{STYLE}</style></head><body>",
    )
    _put(f, f"<h1>imagine batch · {escape(report['status'])}</h1>")
    _put(
        f,
        f"<p>{escape(report['manifest'])} → {escape(report['out'])} · "
        f"profile {escape(str(report['settings'].get('profile')))} · "
        f"{items['done']} of {items['total']} items done, {items['failed']} failed, "
        f"{items['pending']} pending · {images['done']} of {images['total']} images · "
        f"{report['images_per_minute']} images/min this run</p>",
    )
    if report["settings"].get("profile") == "smoke":
        _put(
            f,
            "<p class=note>smoke profile: tiny random-weight models; these images are noise, "
            "not likenesses.</p>",
        )
    for note in report["notes"]:
        _put(f, f"<p class=note>note: {escape(note)}</p>")
    if report["failures"]:
        _put(
            f,
            "<h2>Failures</h2><table><tr><th>line</th><th>item</th><th>code</th>"
            "<th>message</th></tr>",
        )
        for fail in report["failures"]:
            _put(
                f,
                f"<tr><td>{fail['line']}</td><td>{escape(fail['id'])}</td>"
                f"<td>{escape(fail['code'])}</td><td>{escape(fail['message'])}</td></tr>",
            )
        _put(f, "</table>")


def _figure(f: BinaryIO, png: bytes, meta: dict[str, Any], k: int) -> None:
    similarity = meta.get("identity_similarity")
    likeness = (
        f"similarity {similarity:.3f}"
        if isinstance(similarity, int | float)
        else f"similarity n/a ({escape(str(meta.get('identity_similarity_note') or 'not scored'))})"
    )
    _put(
        f,
        f'<figure><img src="{thumbnail_uri(png)}" alt="image {k}" '
        f'title="{escape(str(meta.get("expanded_prompt", "")))}">'
        f"<figcaption>#{k} · seed {escape(str(meta.get('seed')))}<br>"
        f"{escape(str(meta.get('prompt', '')))}<br><span class=note>{likeness}</span>"
        "</figcaption></figure>",
    )


def _put(f: BinaryIO, text: str) -> None:
    f.write(text.encode("utf-8"))
