"""The end-to-end demo: every stage on a bundled sample, on CPU, then a report.

Each step calls the same library function that the matching CLI command calls;
the demo only chains them and records the equivalent command for the report.
Steps write into ``out_dir`` and leave a marker when done, so an interrupted demo
resumes where it stopped (``fresh=True`` starts over).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava.console import Output
from quilt_llava.errors import ConfigError
from quilt_llava.files import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl

BUDGETS = ("full", "small")
TRAIN_CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"
REGION_TERMS = Path(__file__).with_name("region_terms.yaml")


@dataclass
class DemoConfig:
    out_dir: Path = Path("demo_output")
    budget: str = "full"
    seed: int = 0
    fresh: bool = False
    # An OpenAI-compatible endpoint for the LLM generators (optional).
    llm_base_url: str | None = None
    llm_model: str = "gpt-4"
    llm_api_key_env: str = "OPENAI_API_KEY"

    def validate(self) -> None:
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")

    # Sizes per budget: "small" is what the test suite runs.
    @property
    def sizes(self) -> dict[str, Any]:
        if self.budget == "small":
            return {"n_views": 8, "view_seconds": 7.0, "width": 960, "height": 540,
                    "crops_per_cluster": 10, "eval_crops_per_cluster": 5,
                    "stage1_epochs": 1, "stage2_epochs": 10}
        # The tiny LLM starts from random weights: stage 2 needs several epochs to fit.
        return {"n_views": 14, "view_seconds": 9.0, "width": 1280, "height": 720,
                "crops_per_cluster": 16, "eval_crops_per_cluster": 6,
                "stage1_epochs": 1, "stage2_epochs": 10}


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    metrics: dict[str, Any]
    baseline: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def beats_baseline(self) -> bool:
        acc = self.metrics.get("closed_accuracy")
        return acc is not None and acc > self.baseline["closed_accuracy"]


class _Steps:
    """Done-markers keyed by a hash of the demo config, so changed settings redo the work."""

    def __init__(self, out_dir: Path, cfg: DemoConfig, output: Output) -> None:
        self.dir = out_dir / ".steps"
        self.dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({k: str(v) for k, v in asdict(cfg).items() if k not in ("fresh", "out_dir")}, sort_keys=True)
        self.key = hashlib.sha256(payload.encode()).hexdigest()[:16]
        self.output = output
        self.timings: dict[str, float] = {}

    def done(self, name: str) -> bool:
        marker = self.dir / name
        return marker.exists() and marker.read_text().strip() == self.key

    def run(self, name: str, title: str, fn: Any) -> None:
        if self.done(name):
            self.output.info(f"[dim]✓ {title} (done earlier)[/dim]")
            return
        self.output.info(f"[bold]▶ {title}[/bold]")
        t0 = time.perf_counter()
        fn()
        self.timings[name] = round(time.perf_counter() - t0, 1)
        atomic_write_text(self.dir / name, self.key)
        self.output.info(f"  done in {self.timings[name]:.1f} s")


def _prefix_images(records: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        rec = dict(rec)
        if rec.get("image"):
            rec["image"] = f"{prefix}/{rec['image']}"
        out.append(rec)
    return out


def run_demo(cfg: DemoConfig, output: Output | None = None) -> DemoResult:
    """Run every stage on the bundled sample and write ``out_dir/report.html``."""
    from quilt_llava.demo.sample import SampleConfig, build_sample

    cfg.validate()
    output = output or Output()
    out = Path(cfg.out_dir)
    if cfg.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = cfg.sizes
    steps = _Steps(out, cfg, output)
    t_start = time.perf_counter()

    sample_dir, nar_dir, inst_dir, eval_dir = out / "sample", out / "narratives", out / "instruct", out / "eval"
    stage1_dir, stage2_dir = out / "models" / "stage1", out / "models" / "stage2"
    sample_cfg = SampleConfig(n_views=sizes["n_views"], view_seconds=sizes["view_seconds"],
                              width=sizes["width"], height=sizes["height"], seed=cfg.seed)
    video = sample_dir / f"{sample_cfg.name}.mp4"
    transcript = sample_dir / f"{sample_cfg.name}.transcript.json"

    # 1. The sample video and its transcript.
    steps.run("sample", "1/6 building the narrated sample video from ihc.png",
              lambda: build_sample(sample_dir, sample_cfg))

    # 2. Localized narratives.
    def narratives() -> None:
        from quilt_llava.narratives import ExtractConfig, extract_video

        if nar_dir.exists():
            shutil.rmtree(nar_dir)
        rows = extract_video(video, transcript, nar_dir, ExtractConfig())
        if not rows:
            raise RuntimeError(f"no stable segments were extracted from {video}")

    steps.run("narratives", "2/6 extracting localized narratives", narratives)
    rows = read_jsonl(nar_dir / "narratives.jsonl")

    # 3. Instruction data: stage-1 alignment + region Q/A (no LLM needed).
    def instruct() -> None:
        from quilt_llava.instruct import build_alignment_records
        from quilt_llava.instruct.region_qa import RegionQAConfig, build_region_qa

        if inst_dir.exists():
            shutil.rmtree(inst_dir)
        region_cfg = RegionQAConfig.from_yaml(REGION_TERMS)
        region_cfg.crops_per_cluster = sizes["crops_per_cluster"]
        region_cfg.eval_crops_per_cluster = sizes["eval_crops_per_cluster"]
        region_cfg.seed = cfg.seed
        res = build_region_qa(rows, nar_dir, inst_dir, region_cfg)
        held = set(res.eval_segments)
        train_rows = [r for r in rows if f"{r['video_id']}/{r['segment_id']}" not in held]
        seg_align = build_alignment_records(train_rows, seed=cfg.seed, use_grounded=False)
        stage1 = _prefix_images(seg_align, "narratives") + _prefix_images(res.align_records, "instruct")
        stage2 = _prefix_images(res.train_records, "instruct")
        summary = res.summary()
        if cfg.llm_base_url:
            llm_records, llm_summaries = _run_llm_generators(cfg, train_rows, inst_dir, output)
            stage2 += _prefix_images(llm_records, "narratives")
            summary["llm"] = llm_summaries
        write_jsonl(inst_dir / "stage1.jsonl", stage1)
        write_jsonl(inst_dir / "stage2.jsonl", stage2)
        write_jsonl(inst_dir / "eval_questions.jsonl", _prefix_images(res.eval_questions, "instruct"))
        write_json(inst_dir / "summary.json", summary)

    steps.run("instruct", "3/6 building instruction data", instruct)

    # 4. Training, stage 1 then stage 2.
    def train_stage(stage: int) -> None:
        from quilt_llava.train import TrainConfig, train

        target = stage1_dir if stage == 1 else stage2_dir
        if target.exists():
            shutil.rmtree(target)
        overrides: dict[str, Any] = {
            "data_path": str(inst_dir / f"stage{stage}.jsonl"),
            "image_folder": str(out),
            "output_dir": str(target),
            "num_train_epochs": sizes[f"stage{stage}_epochs"],
            "seed": cfg.seed,
        }
        if stage == 2:
            overrides["model_name_or_path"] = str(stage1_dir)
        train(TrainConfig.from_yaml(TRAIN_CONFIGS / f"tiny_stage{stage}.yaml", overrides=overrides))

    steps.run("stage1", "4/6 training stage 1 (projector alignment)", lambda: train_stage(1))
    steps.run("stage2", "4/6 training stage 2 (instruction tuning)", lambda: train_stage(2))

    # 5. Evaluation on held-out segments.
    def evaluate() -> None:
        from quilt_llava.eval.generate import generate_predictions
        from quilt_llava.eval.metrics import score_vqa
        from quilt_llava.instruct.region_qa import majority_baseline

        if eval_dir.exists():
            shutil.rmtree(eval_dir)
        questions = read_jsonl(inst_dir / "eval_questions.jsonl")
        preds_path = eval_dir / "predictions.jsonl"
        generate_predictions(stage2_dir, questions, out, preds_path, batch_size=16, max_new_tokens=24,
                             model_id="quilt-llava-tiny-demo")
        metrics = score_vqa(questions, read_jsonl(preds_path), seed=cfg.seed)
        baseline = majority_baseline(read_jsonl(inst_dir / "stage2.jsonl"), questions)
        write_json(eval_dir / "metrics.json", {"model": metrics, "majority_baseline": baseline})

    steps.run("eval", "5/6 evaluating on held-out segments", evaluate)

    # 6. Report.
    from quilt_llava.demo.build_report import assemble_report

    output.info("[bold]▶ 6/6 writing the report[/bold]")
    scores = read_json(eval_dir / "metrics.json")
    timings = dict(steps.timings)
    timings["total"] = round(time.perf_counter() - t_start, 1)
    report_path = assemble_report(out, cfg, scores, timings)
    result = DemoResult(out_dir=out, report=report_path, metrics=scores["model"],
                        baseline=scores["majority_baseline"], timings=timings)
    write_json(out / "result.json", {
        "report": str(report_path), "metrics": result.metrics, "majority_baseline": result.baseline,
        "beats_baseline": result.beats_baseline, "timings": timings,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    })
    return result


def _run_llm_generators(cfg: DemoConfig, train_rows: list[dict[str, Any]], inst_dir: Path,
                        output: Output) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Conversation and detailed-description records for the training views, through the endpoint.

    Only training views are sent, so held-out views never reach the training data.
    Failures are reported in the summary (and the rejects files); the demo goes on.
    """
    from quilt_llava.instruct.run import GenerateOptions, run_generator

    narratives = inst_dir / "narratives.train.jsonl"
    write_jsonl(narratives, train_rows)
    records: list[dict[str, Any]] = []
    summaries: dict[str, Any] = {}
    for name in ("conversation", "detail"):
        out = inst_dir / f"llm_{name}.jsonl"
        opts = GenerateOptions(
            generator=name, narratives=narratives, out=out,
            base_url=cfg.llm_base_url or "", model=cfg.llm_model, api_key_env=cfg.llm_api_key_env,
            cache=inst_dir / "llm_cache.sqlite",
        )
        summary = run_generator(opts, output)
        summaries[name] = {k: summary.get(k) for k in ("records", "rejected", "failed", "calls", "cached")}
        output.info(f"  LLM generator {name}: {summaries[name]}")
        if out.exists():
            records.extend(read_jsonl(out))
    return records, summaries
