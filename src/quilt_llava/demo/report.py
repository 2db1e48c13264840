"""The demo's HTML report: one self-contained page next to the files it shows.

Images are referenced by relative path (the report lives in the demo output
folder), every text taken from data is HTML-escaped, and plots are PNGs drawn
with matplotlib's non-interactive backend.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.files import atomic_write_text, iter_jsonl


@dataclass
class ReportSegment:
    image: str  # relative to the report
    caption: str
    start: float
    end: float
    n_trace: int
    n_clusters: int


@dataclass
class DemoReport:
    out_dir: Path
    video: str = ""
    segments: list[ReportSegment] = field(default_factory=list)
    sample_records: list[dict[str, Any]] = field(default_factory=list)  # LLaVA records, images relative to report
    loss_plots: list[tuple[str, str]] = field(default_factory=list)  # (title, png relative path)
    metrics_rows: list[dict[str, Any]] = field(default_factory=list)  # {name, value, ci, baseline}
    predictions: list[dict[str, Any]] = field(default_factory=list)  # {image, question, answer, prediction}
    commands: list[tuple[str, str]] = field(default_factory=list)  # (what, command)
    facts: list[tuple[str, str]] = field(default_factory=list)  # (key, value) summary lines
    warnings: list[str] = field(default_factory=list)
    # Speech: {used, reason, figures rows [(name, value)], lines: [{start, script, raw, corrected}]}
    # where script/raw/corrected are lists of (word, wrong) pairs.
    speech: dict[str, Any] = field(default_factory=dict)


def plot_loss_curves(log_files: list[tuple[str, Path]], png_path: Path) -> Path:
    """Plot ``loss`` against ``step`` for each (label, log_history.jsonl) into one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for label, path in log_files:
        steps, losses = [], []
        for row in iter_jsonl(path):
            if "loss" in row and "step" in row:
                steps.append(row["step"])
                losses.append(row["loss"])
        ax.plot(steps, losses, marker=".", label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path)
    return png_path


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: list[str] | None, rows: list[list[str]]) -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{v[0]:.1f}, {v[1]:.1f}]"
    return "" if v is None else str(v)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
.seg { display: grid; grid-template-columns: 480px 1fr; gap: 1rem; margin: 1rem 0; align-items: start; }
.seg img { width: 480px; border: 1px solid #ccc; }
.rec { display: grid; grid-template-columns: 96px 1fr; gap: .8rem; margin: .6rem 0; }
.rec img, td img { width: 96px; image-rendering: pixelated; border: 1px solid #ccc; }
code, pre { background: #f5f5f5; padding: .1rem .3rem; } pre { padding: .6rem; overflow-x: auto; }
.warn { color: #a00; } .muted { color: #666; }
.err { background: #fdd; color: #900; text-decoration: underline wavy #c00; } .speech td { font-size: .9rem; }
"""


def _marked(words: list[tuple[str, bool]]) -> str:
    return " ".join(f"<span class='err'>{_e(w)}</span>" if wrong else _e(w) for w, wrong in words)


def _speech_section(speech: dict[str, Any]) -> list[str]:
    parts = ["<h2 id='speech'>Speech: script, recognition, correction</h2>"]
    if speech.get("used") == "script":
        parts.append(f"<p class='warn'>No speech this run: {_e(speech.get('reason', ''))}. The narratives were "
                     "made from the scripted transcript.</p>")
        return parts
    parts.append("<p>The narration was spoken by espeak-ng into the video's audio track, recognised from it "
                 "with faster-whisper, then corrected against the pathology vocabulary"
                 + (" and by the LLM" if speech.get("used") == "llm" else "")
                 + "; the narratives below were made from the corrected text. Words that differ from the "
                 "script are <span class='err'>marked</span> (spelling variants such as tumor/tumour count as the same).</p>")
    if speech.get("figures"):
        parts.append(_table(["", *speech["figure_columns"]],
                            [[_e(name), *(_e(v) for v in values)] for name, values in speech["figures"]]))
    if speech.get("facts"):
        parts.append(_table(None, [[_e(k), _e(v)] for k, v in speech["facts"]]))
    stages = speech.get("stages", [])
    rows = [[_e(f"{line['start']:.1f}"), _marked(line["script"]), *(_marked(line[name]) for name in stages)]
            for line in speech.get("lines", [])]
    parts.append("<div class='speech'>" + _table(["s", "script", *(speech.get("stage_titles") or stages)], rows) + "</div>")
    return parts


def write_report(report: DemoReport) -> Path:
    """Write ``report.out_dir/report.html`` and return its path."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>quilt-llava demo report</title><style>{CSS}</style></head><body>"]
    parts.append("<h1>quilt-llava: end-to-end demo</h1>")
    parts.append("<p class='muted'>From a narrated slide-viewing video to a trained and evaluated tiny assistant, on CPU.</p>")
    if report.warnings:
        parts.append("<ul>" + "".join(f"<li class='warn'>{_e(w)}</li>" for w in report.warnings) + "</ul>")
    if report.facts:
        parts.append(_table(None, [[_e(k), _e(v)] for k, v in report.facts]))

    parts.append("<h2 id='metrics'>Held-out evaluation</h2>")
    if report.metrics_rows:
        rows = [[_e(r["name"]), _e(_fmt(r.get("value"))), _e(_fmt(r.get("ci"))), _e(_fmt(r.get("baseline")))]
                for r in report.metrics_rows]
        parts.append(_table(["metric (x100)", "tiny model", "95% CI", "majority baseline"], rows))

    if report.speech:
        parts.extend(_speech_section(report.speech))

    parts.append("<h2 id='narratives'>Localized narratives</h2>")
    if report.video:
        parts.append(f"<p>Video: <a href='{_e(report.video)}'>{_e(os.path.basename(report.video))}</a>. "
                     "Trace colour runs from early (dark) to late (bright); boxes are the spatio-temporal clusters.</p>")
    for seg in report.segments:
        parts.append(
            f"<div class='seg'><img src='{_e(seg.image)}' alt='segment'>"
            f"<div><b>{seg.start:.1f}-{seg.end:.1f} s</b> <span class='muted'>({seg.n_trace} cursor points, "
            f"{seg.n_clusters} clusters)</span><p>{_e(seg.caption)}</p></div></div>"
        )

    parts.append("<h2 id='records'>Instruction records (samples)</h2>")
    for rec in report.sample_records:
        turns = "".join(
            f"<div><b>{_e(t['from'])}:</b> {_e(t['value'])}</div>" for t in rec.get("conversations", [])
        )
        img = f"<img src='{_e(rec['image'])}' alt='record image'>" if rec.get("image") else "<div></div>"
        parts.append(f"<div class='rec'>{img}<div><code>{_e(rec.get('id', ''))}</code>{turns}</div></div>")

    parts.append("<h2 id='training'>Training</h2>")
    for title, png in report.loss_plots:
        parts.append(f"<h3>{_e(title)}</h3><img src='{_e(png)}' alt='{_e(title)}'>")

    if report.predictions:
        parts.append("<h2 id='predictions'>Sample predictions</h2>")
        rows = [[f"<img src='{_e(p['image'])}' alt='question image'>", _e(p["question"]), _e(p["answer"]), _e(p["prediction"])]
                for p in report.predictions]
        parts.append(_table(["image", "question", "reference", "model"], rows))

    parts.append("<h2 id='commands'>Run each stage on your own data</h2>")
    for what, cmd in report.commands:
        parts.append(f"<p>{_e(what)}</p><pre>{_e(cmd)}</pre>")
    parts.append("<script type='application/json' id='report-data'>"
                 + _e(json.dumps({"metrics": report.metrics_rows}, default=str)) + "</script>")
    parts.append("</body></html>")
    path = report.out_dir / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path
