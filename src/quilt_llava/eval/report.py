"""Results of several models side by side, laid out like the published tables.

``eval report`` reads the ``results.json`` files of ``eval run`` (given directly, or
found under run folders) and, optionally, judge review files; it builds one table of
the benchmarks' headline metrics (models as rows; benchmarks as column groups, each
with its open / closed / accuracy columns, in the order of the Quilt-LLaVA paper) and
one of the judge's relative scores (conv, detail, overall). Every value of ours has its
95% bootstrap interval. The published rows (``published.yaml``, taken from SPEC.md)
can be put beside ours; they have no intervals because the paper gives none.

Tables are plain data (:class:`Table`) rendered as Markdown, CSV, a rich table or JSON.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from quilt_llava.console import Output
from quilt_llava.errors import InputError
from quilt_llava.eval.metrics import HEADLINE_METRICS, METRIC_LABELS
from quilt_llava.files import read_json

# The published tables' order; other benchmarks follow in the order they are met.
BENCHMARK_ORDER = ("quilt_vqa", "quilt_vqa_red", "pathvqa", "pmc_vqa_path", "slake", "vqa_rad")
SHORT_LABELS = {"open_recall": "open", "closed_accuracy": "closed", "choice_accuracy": "accuracy"}
JUDGE_GROUPS = ("conv", "detail", "overall")


@dataclass
class Cell:
    value: float | None
    ci: tuple[float, float] | None = None
    partial: bool = False  # scored on the answered questions only (eval run --allow-missing)

    def text(self, digits: int = 2) -> str:
        if self.value is None:
            return "-"
        out = f"{self.value:.{digits}f}"
        if self.ci:
            out += f" ({self.ci[0]:.1f}-{self.ci[1]:.1f})"
        return out + (" *" if self.partial else "")


@dataclass
class Row:
    model: str
    cells: dict[str, Cell] = field(default_factory=dict)
    published: bool = False


@dataclass
class Column:
    key: str  # "<group>/<metric>"
    group: str  # benchmark title, or "GPT-4 judge"
    label: str  # "open", "closed", "accuracy", "conv", ...


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[Row]
    digits: int = 2

    def header(self) -> list[str]:
        return ["model", *[f"{c.group} {c.label}" for c in self.columns]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [c.key for c in self.columns],
            "rows": [
                {
                    "model": r.model,
                    "published": r.published,
                    "cells": {
                        k: {"value": c.value, "ci": list(c.ci) if c.ci else None, "partial": c.partial}
                        for k, c in r.cells.items()
                    },
                }
                for r in self.rows
            ],
        }


# --------------------------------------------------------------------------- inputs


def find_results(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """``results.json`` files: each path is one, or a folder searched for them (``eval run``'s ``--out``)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            hits = sorted(p.rglob("results.json"))
            if not hits:
                raise InputError(str(p), "no results.json under this folder (the --out folder of `eval run`)")
            found.extend(hits)
        elif p.exists():
            found.append(p)
        else:
            raise InputError(str(p), "not found (give results.json files or the folders holding them)")
    return found


def load_results(paths: list[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        obj = read_json(p)
        if not isinstance(obj, dict) or "metrics" not in obj or "benchmark" not in obj:
            raise InputError(str(p), "not a results.json of `quilt-llava eval run` (needs 'benchmark' and 'metrics')")
        out.append(obj)
    return out


def published_results() -> dict[str, list[dict[str, Any]]]:
    text = (resources.files("quilt_llava.eval") / "published.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _title(result: dict[str, Any]) -> str:
    """The benchmark's short title: its description up to the first parenthesis, else its name."""
    description = str(result.get("description") or "").split(" (")[0].strip()
    return description or str(result["benchmark"])


def _ci(value: Any) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if isinstance(value, (list, tuple)) and len(value) == 2 else None


# --------------------------------------------------------------------------- tables


def vqa_table(results: list[dict[str, Any]], published: bool = False, output: Output | None = None) -> Table:
    """Benchmarks' headline metrics, one row per model (ours first, then the published rows)."""
    output = output or Output(quiet=True)
    titles: dict[str, str] = {}
    metrics: dict[str, list[str]] = {}
    rows: dict[str, Row] = {}
    seen: dict[tuple[str, str], str] = {}
    for r in results:
        bench, model = str(r["benchmark"]), str(r["model_id"])
        titles.setdefault(bench, _title(r))
        wanted = metrics.setdefault(bench, [])
        for m in r.get("headline") or HEADLINE_METRICS:
            if m not in wanted and r["metrics"].get(m) is not None:
                wanted.append(m)
        if (bench, model) in seen:
            output.warn(
                f"{model} on {bench} appears twice ({seen[bench, model]}, {r.get('created', '?')}); "
                "the later file given wins"
            )
        seen[bench, model] = str(r.get("created", "?"))
        row = rows.setdefault(model, Row(model))
        for m in wanted:
            row.cells[f"{bench}/{m}"] = Cell(
                r["metrics"].get(m), _ci(r["metrics"].get(m + "_ci")), bool(r.get("partial"))
            )
    out_rows = list(rows.values())
    if published:
        for entry in published_results().get("vqa", []):
            row = Row(str(entry["model"]), published=True)
            for bench, values in entry["results"].items():
                wanted = metrics.setdefault(bench, [])
                titles.setdefault(bench, _builtin_title(bench))
                for m, v in values.items():
                    if m not in wanted:
                        wanted.append(m)
                    row.cells[f"{bench}/{m}"] = Cell(float(v))
            out_rows.append(row)
    order = [b for b in BENCHMARK_ORDER if b in metrics] + [b for b in metrics if b not in BENCHMARK_ORDER]
    columns = [
        Column(f"{b}/{m}", titles[b], SHORT_LABELS.get(m, METRIC_LABELS.get(m, m)))
        for b in order
        for m in sorted(metrics[b], key=_metric_rank)
    ]
    return Table("VQA benchmarks (x100, 95% bootstrap interval)", columns, out_rows)


def _metric_rank(metric: str) -> int:
    order = list(HEADLINE_METRICS) + [m for m in METRIC_LABELS if m not in HEADLINE_METRICS]
    return order.index(metric) if metric in order else len(order)


def _builtin_title(bench: str) -> str:
    from quilt_llava.eval.benchmarks import builtin_benchmarks, load_benchmark

    if bench in builtin_benchmarks():
        return _title({"benchmark": bench, "description": load_benchmark(bench).description})
    return bench


def judge_table(reviews: dict[str, list[dict[str, Any]]], published: bool = False) -> Table:
    """Relative scores (conv, detail, overall) per judged model; ``reviews``: model -> review rows."""
    from quilt_llava.eval.judge import summarize_reviews

    columns = [Column(f"judge/{g}", "judge", g) for g in JUDGE_GROUPS]
    rows = []
    for model, review_rows in reviews.items():
        groups = {g.name: g for g in summarize_reviews(review_rows)}
        rows.append(
            Row(
                model,
                {
                    f"judge/{name}": Cell(groups[name].relative, groups[name].relative_ci)
                    for name in JUDGE_GROUPS
                    if name in groups
                },
            )
        )
    if published:
        for entry in published_results().get("judge", []):
            rows.append(
                Row(
                    str(entry["model"]),
                    {f"judge/{g}": Cell(float(v)) for g, v in entry["results"].items()},
                    published=True,
                )
            )
    title = "LLM judge: relative score (100 x model / reference, 95% bootstrap interval)"
    return Table(title + ("; published rows: GPT-4 judge" if published else ""), columns, rows, digits=1)


# --------------------------------------------------------------------------- renderings


def to_markdown(table: Table) -> str:
    lines = [f"**{table.title}**", "", "| " + " | ".join(table.header()) + " |", "|---|" + "---:|" * len(table.columns)]
    for row in table.rows:
        cells = [row.cells.get(c.key, Cell(None)).text(table.digits) for c in table.columns]
        name = f"{row.model} (published)" if row.published and "published" not in row.model else row.model
        lines.append("| " + " | ".join([name, *cells]) + " |")
    if any(c.partial for r in table.rows for c in r.cells.values()):
        lines += ["", "\\* scored on the answered questions only (some failed; see that run's results.json)."]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    """One row per model: value, interval low and high for each column (empty where none)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["model", "published"]
    for c in table.columns:
        head += [c.key, f"{c.key} ci_low", f"{c.key} ci_high"]
    w.writerow(head)
    for row in table.rows:
        out: list[Any] = [row.model, "yes" if row.published else "no"]
        for c in table.columns:
            cell = row.cells.get(c.key, Cell(None))
            out += ["" if cell.value is None else cell.value, *(cell.ci if cell.ci else ("", ""))]
        w.writerow(out)
    return buf.getvalue()


def to_rich(table: Table) -> Any:
    from rich.table import Table as RichTable

    rt = RichTable(title=table.title, show_lines=False)
    rt.add_column("model", style="bold")
    for c in table.columns:
        rt.add_column(f"{c.group}\n{c.label}", justify="right")
    for row in table.rows:
        cells = [row.cells.get(c.key, Cell(None)).text(table.digits) for c in table.columns]
        rt.add_row(row.model, *cells, style="dim" if row.published else None)
    return rt
