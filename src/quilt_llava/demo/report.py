"""The demo's HTML report: one self-contained page next to the files it shows.

Images are referenced by relative path (the report lives in the demo output
folder). The page is a Jinja2 template (``templates/report.html``) rendered with
autoescaping, so every text taken from data is HTML-escaped; plots are PNGs drawn
with matplotlib's non-interactive backend and written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.files import atomic_open, atomic_write_text, iter_jsonl


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
    with atomic_open(png_path, "wb") as f:
        fig.savefig(f, format="png")
    return png_path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{v[0]:.1f}, {v[1]:.1f}]"
    return "" if v is None else str(v)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0; }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }
.seg { display: grid; grid-template-columns: 480px 1fr; gap: 1rem; margin: 1rem 0; align-items: start; }
.seg img { width: 480px; border: 1px solid #ccc; }
.rec { display: grid; grid-template-columns: 96px 1fr; gap: .8rem; margin: .6rem 0; }
.rec img, td img { width: 96px; image-rendering: pixelated; border: 1px solid #ccc; }
code, pre { background: #f5f5f5; padding: .1rem .3rem; } pre { padding: .6rem; overflow-x: auto; }
.warn { color: #a00; } .muted { color: #666; }
.err { background: #fdd; color: #900; text-decoration: underline wavy #c00; } .speech td { font-size: .9rem; }
"""


def render_report(report: DemoReport) -> str:
    """The report page as HTML, from the Jinja2 template ``templates/report.html`` (autoescaped).

    The machine-readable block ``<script type="application/json" id="report-data">`` goes
    through Jinja2's ``tojson``, which escapes the characters that could end the script
    element instead of HTML-escaping them (a script element's text is not entity-decoded,
    so ``&quot;`` there would not be JSON).
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("quilt_llava.demo", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = _fmt
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "default": str}
    speech = report.speech
    figures = [[name, *values] for name, values in speech.get("figures") or []]
    return env.get_template("report.html").render(
        report=report,
        css=CSS,
        video_name=os.path.basename(report.video),
        speech_headers=["", *(speech.get("figure_columns") or [])],
        speech_figures=figures,
        data={"metrics": report.metrics_rows},
    )


def write_report(report: DemoReport) -> Path:
    """Write ``report.out_dir/report.html`` and return its path."""
    path = report.out_dir / "report.html"
    atomic_write_text(path, render_report(report))
    return path
