"""Gather the demo's outputs into a :class:`~quilt_llava.demo.report.DemoReport`."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from quilt_llava.demo.report import DemoReport, ReportSegment, plot_loss_curves, write_report
from quilt_llava.eval.metrics import METRIC_LABELS
from quilt_llava.files import iter_jsonl, read_jsonl

GENERAL_COMMANDS = (
    (
        "Your own videos (a folder of videos with sidecar transcripts), then LLM generators through any "
        "OpenAI-compatible endpoint (key read from the environment):",
        "quilt-llava narratives extract VIDEOS/ --out narratives/ --workers 4\n"
        "quilt-llava instruct align narratives/narratives.jsonl --out stage1.jsonl\n"
        "export OPENAI_API_KEY=...\n"
        "quilt-llava instruct conversation narratives/narratives.jsonl --out conv.jsonl "
        "--base-url https://api.openai.com/v1 --model gpt-4 --dry-run",
    ),
    (
        "Full-size training with the published hyperparameters (see `quilt-llava train configs`):",
        "accelerate launch -m quilt_llava train --config stage1.yaml --set data_path=stage1.jsonl "
        "--set image_folder=narratives --set output_dir=runs/stage1",
    ),
    ("Benchmarks:", "quilt-llava eval run quilt_vqa --model runs/stage2 --questions quilt_vqa.jsonl --images images/"),
    ("Re-run this demo from scratch:", "quilt-llava demo --out demo_output --fresh"),
)

SHOWN_METRICS = ("closed_accuracy", "open_recall", "open_f1", "open_exact_match", "open_bleu1")


def assemble_report(
    out: Path, cfg: Any, scores: dict[str, Any], timings: dict[str, float], commands: list[tuple[str, str]]
) -> Path:
    from quilt_llava.narratives.show import show_image_name, write_show

    report = DemoReport(out_dir=out)
    nar_dir = out / "narratives"
    show_html = write_show(nar_dir)
    show_dir = show_html.parent
    rows = read_jsonl(nar_dir / "narratives.jsonl")
    videos = sorted((out / "sample").glob("*.mp4"))
    if videos:
        report.video = os.path.relpath(videos[0], out)
    for i, row in enumerate(rows):
        drawn = show_dir / "images" / show_image_name(i, row)  # rows in the order write_show drew them
        image = drawn if drawn.exists() else nar_dir / row["image"]
        report.segments.append(
            ReportSegment(
                image=os.path.relpath(image, out),
                caption=row.get("grounded_caption", ""),
                start=float(row["start"]),
                end=float(row["end"]),
                n_trace=len(row.get("trace", [])),
                n_clusters=len(row.get("clusters", [])),
            )
        )

    inst = out / "instruct"
    for name, k in (("align.jsonl", 2), ("train.jsonl", 4)):
        path = inst / name
        if path.exists():
            report.sample_records.extend(_spread(read_jsonl(path), k))
    for rec in report.sample_records:
        if rec.get("image"):
            rec["image"] = f"instruct/{rec['image']}"

    logs = [(f"stage {i}", out / "models" / f"stage{i}" / "log_history.jsonl") for i in (1, 2)]
    for label, log in logs:
        if log.exists():
            png = plot_loss_curves([(label, log)], out / "plots" / f"loss_{label.replace(' ', '')}.png")
            report.loss_plots.append((f"Training loss, {label}", os.path.relpath(png, out)))

    model, base = scores["model"], scores["majority_baseline"]
    for key in SHOWN_METRICS:
        if model.get(key) is None:
            continue
        report.metrics_rows.append(
            {
                "name": METRIC_LABELS.get(key, key),
                "value": model[key],
                "ci": model.get(f"{key}_ci"),
                "baseline": base.get(key),
            }
        )

    preds = {p["question_id"]: p["text"] for p in iter_jsonl(out / "eval" / "predictions.jsonl")}
    questions = read_jsonl(inst / "eval_questions.jsonl")
    for q in _spread(questions, 10):
        report.predictions.append(
            {
                "image": f"instruct/{q['image']}",
                "question": q["question"],
                "answer": q["answer"],
                "prediction": preds.get(q["question_id"], ""),
            }
        )

    report.speech = speech_view(out)
    report.commands = [*commands, *GENERAL_COMMANDS]
    report.facts = [
        (
            "held-out questions",
            f"{model.get('n', 0)} ({model.get('n_closed', 0)} closed, {model.get('n_open', 0)} open)",
        ),
        ("segments extracted", str(len(rows))),
        ("budget", str(getattr(cfg, "budget", ""))),
        (
            "machine",
            f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
            f"{platform.python_version()}",
        ),
        ("time per step (s)", ", ".join(f"{k} {v}" for k, v in timings.items())),
    ]
    acc, base_acc = model.get("closed_accuracy"), base.get("closed_accuracy")
    if acc is not None and base_acc is not None and acc <= base_acc:
        report.warnings.append(f"the model ({acc:.1f}) did not beat the majority baseline ({base_acc:.1f})")
    return write_report(report)


def _spread(items: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """``k`` items spread evenly over the list (deterministic)."""
    if len(items) <= k:
        return [dict(i) for i in items]
    step = len(items) / k
    return [dict(items[int(i * step)]) for i in range(k)]


STAGE_TITLES = {"raw": "recognised (raw)", "vocabulary": "after vocabulary correction", "llm": "after LLM correction"}


def speech_view(out: Path) -> dict[str, Any]:
    """The speech section of the report: figures and the side-by-side lines with errors marked."""
    from quilt_llava.demo.speech import marked
    from quilt_llava.files import read_json

    status_path, scores_path = out / "speech" / "status.json", out / "speech" / "scores.json"
    if not status_path.exists():
        return {}
    status = read_json(status_path)
    if status.get("used") == "script" or not scores_path.exists():
        return {"used": "script", "reason": status.get("reason", "")}
    from quilt_llava.narratives.vocabulary import Vocabulary

    vocab = Vocabulary.load()
    data = read_json(scores_path)
    stages = [name for name in ("raw", "vocabulary", "llm") if name in data["scores"]]
    scores = data["scores"]
    figures = [
        ("word error rate vs the script", [f"{scores[n]['wer']:.3f}" for n in stages]),
        (
            "pathology-term recall",
            [f"{scores[n]['term_recall']:.2f} ({scores[n]['terms_found']}/{scores[n]['terms']})" for n in stages],
        ),
        (
            "term mentions nobody said",  # a term written over a word where another, or none, was spoken
            [str(scores[n].get("terms_unspoken", "-")) for n in stages],
        ),
    ]
    facts = [
        (
            "ASR",
            f"{data['model']}: {data['audio_seconds']:.0f} s of speech recognised in {data['asr_seconds']:.1f} s "
            f"({data['realtime_factor']:.2f} x real time)",
        ),
        (
            "vocabulary changes",
            f"{data['vocabulary_changes']}; right words changed into wrong ones: "
            f"{data['right_words_changed']} of {data['right_words']}",
        ),
        ("changes made", "; ".join(f"{c['before']} -> {c['after']}" for c in data["changes"]) or "none"),
    ]
    if heard := data.get("acoustic_check"):
        facts.append(
            ("acoustic check", f"{heard['refused']} proposed change(s) refused by the audio ({heard['seconds']} s)")
        )
    lines = []
    for line in data["lines"]:
        row: dict[str, Any] = {"start": line["start"]}
        script_marks = None
        for name in stages:
            ref_m, hyp_m = marked(line["script"], line.get(name, ""), vocab)
            script_marks = script_marks or ref_m  # the script marked against the raw recognition
            row[name] = hyp_m
        row["script"] = script_marks or [(w, False) for w in line["script"].split()]
        lines.append(row)
    return {
        "used": status.get("used"),
        "figures": figures,
        "figure_columns": [STAGE_TITLES[n] for n in stages],
        "facts": facts,
        "stages": stages,
        "stage_titles": [STAGE_TITLES[n] for n in stages],
        "lines": lines,
    }
