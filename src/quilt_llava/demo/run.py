"""The end-to-end demo: every stage on a bundled sample, on CPU, then a report.

Each step calls the same library function that the matching CLI command calls;
the demo only chains them, and :func:`equivalent_commands` spells out the CLI
commands that redo each step by hand. Steps write into ``out_dir`` and leave a
marker when done, so an interrupted demo resumes where it stopped
(``fresh=True`` starts over).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quilt_llava import __version__
from quilt_llava.console import Output
from quilt_llava.errors import ConfigError
from quilt_llava.files import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl
from quilt_llava.narratives.asr import AsrConfig

BUDGETS = ("full", "small")
REGION_TERMS = Path(__file__).with_name("region_terms.yaml")
STEPS_DIR = ".steps"  # marks a folder as a demo output (and holds the step markers)


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
    # Voice the narration (espeak-ng), recognise it (faster-whisper) and correct it; without
    # espeak-ng or the ASR extra, or with speech=False, the scripted transcript is used.
    speech: bool = True
    asr_model: str = "tiny.en"
    asr_second_pass: bool = AsrConfig(model="").second_pass  # the vocabulary-informed second ASR pass

    def validate(self) -> None:
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")

    # Sizes per budget: "small" is what the test suite runs.
    @property
    def sizes(self) -> dict[str, Any]:
        if self.budget == "small":
            return {
                "n_views": 8,
                "view_seconds": 7.0,
                "width": 960,
                "height": 540,
                "crops_per_cluster": 10,
                "eval_crops_per_cluster": 5,
                "stage1_epochs": 1,
                "stage2_epochs": 10,
            }
        # The tiny LLM starts from random weights: stage 2 needs several epochs to fit.
        return {
            "n_views": 14,
            "view_seconds": 9.0,
            "width": 1280,
            "height": 720,
            "crops_per_cluster": 16,
            "eval_crops_per_cluster": 6,
            "stage1_epochs": 1,
            "stage2_epochs": 10,
        }


@dataclass
class DemoPaths:
    out: Path

    def __post_init__(self) -> None:
        o = self.out
        self.sample, self.narratives, self.instruct, self.eval = (
            o / "sample",
            o / "narratives",
            o / "instruct",
            o / "eval",
        )
        self.stage1, self.stage2 = o / "models" / "stage1", o / "models" / "stage2"
        self.video = self.sample / "ihc_tour.mp4"
        self.transcript = self.sample / "ihc_tour.transcript.json"
        self.predictions = self.eval / "predictions.jsonl"
        self.speech = o / "speech"
        self.speech_status = self.speech / "status.json"
        self.baseline_predictions = self.eval / "majority_predictions.jsonl"


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    speech: dict[str, Any] = field(default_factory=dict)  # which transcript was used; WER and term recall

    @property
    def beats_baseline(self) -> bool:
        acc, base = self.metrics.get("closed_accuracy"), self.baseline.get("closed_accuracy")
        return acc is not None and base is not None and acc > base


class _Steps:
    """Done-markers keyed by the demo config and package version; each keeps its step's time."""

    def __init__(self, out_dir: Path, cfg: DemoConfig, output: Output) -> None:
        self.dir = out_dir / STEPS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) for k, v in asdict(cfg).items() if k not in ("fresh", "out_dir")}
        payload = json.dumps({"version": __version__, **settings}, sort_keys=True)
        self.key = hashlib.sha256(payload.encode()).hexdigest()[:16]
        self.output = output
        self.timings: dict[str, float] = {}

    def _marker(self, name: str) -> dict[str, Any] | None:
        try:
            marker = json.loads((self.dir / name).read_text())
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and marker.get("key") == self.key else None

    def run(self, name: str, title: str, fn: Any) -> None:
        marker = self._marker(name)
        if marker is not None:
            self.timings[name] = float(marker.get("seconds", 0.0))
            self.output.info(f"[dim]✓ {title} (done earlier)[/dim]", markup=True)
            return
        self.output.info(f"[bold]▶ {title}[/bold]", markup=True)
        t0 = time.perf_counter()
        fn()
        self.timings[name] = round(time.perf_counter() - t0, 1)
        atomic_write_text(self.dir / name, json.dumps({"key": self.key, "seconds": self.timings[name]}))
        self.output.info(f"  done in {self.timings[name]:.1f} s")


def prepare_out_dir(out: Path, fresh: bool) -> None:
    """Create ``out``; with ``fresh`` empty it first, but only if it is a demo output (or empty)."""
    if fresh and out.exists():
        if not out.is_dir():
            raise ConfigError(f"--out {out} is a file, not a folder")
        if any(out.iterdir()) and not (out / STEPS_DIR).is_dir():
            raise ConfigError(
                f"refusing to delete {out}: it is not empty and not a demo output "
                f"(no {STEPS_DIR}/ inside); choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def run_demo(cfg: DemoConfig, output: Output | None = None) -> DemoResult:
    """Run every stage on the bundled sample and write ``out_dir/report.html``."""
    from quilt_llava.demo.sample import SampleConfig, build_sample

    cfg.validate()
    output = output or Output()
    out = Path(cfg.out_dir)
    prepare_out_dir(out, cfg.fresh)
    sizes = cfg.sizes
    steps = _Steps(out, cfg, output)
    p = DemoPaths(out)
    sample_cfg = SampleConfig(
        n_views=sizes["n_views"],
        view_seconds=sizes["view_seconds"],
        width=sizes["width"],
        height=sizes["height"],
        seed=cfg.seed,
    )

    steps.run(
        "sample", "1/7 building the narrated sample video from ihc.png", lambda: build_sample(p.sample, sample_cfg)
    )
    steps.run("speech", "2/7 voicing the narration, recognising and correcting it", lambda: run_speech(cfg, p, output))
    steps.run("narratives", "3/7 extracting localized narratives", lambda: extract_narratives(p))
    steps.run("instruct", "4/7 building instruction data", lambda: build_instruction_data(cfg, p, output))
    steps.run("stage1", "5/7 training stage 1 (projector alignment)", lambda: train_stage(cfg, p, 1))
    steps.run("stage2", "5/7 training stage 2 (instruction tuning)", lambda: train_stage(cfg, p, 2))
    steps.run("eval", "6/7 evaluating on held-out segments", lambda: evaluate(cfg, p))

    output.info("[bold]▶ 7/7 writing the report[/bold]", markup=True)
    return write_result(cfg, p, steps.timings)


def extract_narratives(p: DemoPaths) -> None:
    """Localized narratives of the sample, from the corrected recognition when there was speech."""
    from quilt_llava.narratives import ExtractConfig, extract_video

    if p.narratives.exists():
        shutil.rmtree(p.narratives)
    rows = extract_video(p.video, narration_transcript(p), p.narratives, ExtractConfig())
    if not rows:
        raise RuntimeError(f"no stable segments were extracted from {p.video}")


def build_instruction_data(cfg: DemoConfig, p: DemoPaths, output: Output) -> None:
    """Stage-1 alignment and region Q/A records (no LLM), plus the LLM generators when configured."""
    from quilt_llava.instruct.region_qa import write_region_qa

    if p.instruct.exists():
        shutil.rmtree(p.instruct)
    region = region_config(cfg)
    summary = write_region_qa(p.narratives / "narratives.jsonl", p.instruct, region)
    save_region_terms(region, p)
    if cfg.llm_base_url:
        held = set(read_json(p.instruct / "held_out.json"))
        train_rows = [
            r for r in read_jsonl(p.narratives / "narratives.jsonl") if f"{r['video_id']}/{r['segment_id']}" not in held
        ]
        llm_records, summary["llm"] = _run_llm_generators(cfg, train_rows, p.instruct, output)
        for rec in llm_records:  # segment images were copied under segments/ by region-qa
            rec["image"] = f"segments/{rec['image']}"
        write_jsonl(p.instruct / "train.jsonl", read_jsonl(p.instruct / "train.jsonl") + llm_records)
        write_json(p.instruct / "summary.json", summary)


def train_stage(cfg: DemoConfig, p: DemoPaths, stage: int) -> None:
    """Train stage 1 (projector alignment) or stage 2 (instruction tuning) of the tiny model."""
    from quilt_llava.train import TrainConfig, train

    target = p.stage1 if stage == 1 else p.stage2
    if target.exists():
        shutil.rmtree(target)
    config, overrides = train_settings(cfg, p, stage)
    train(TrainConfig.from_yaml(config, overrides=overrides))


def evaluate(cfg: DemoConfig, p: DemoPaths) -> None:
    """Answer the held-out questions and score them next to the majority baseline, scored the same way."""
    from quilt_llava.eval.generate import generate_predictions
    from quilt_llava.eval.metrics import score_vqa
    from quilt_llava.instruct.region_qa import majority_predictions

    if p.eval.exists():
        shutil.rmtree(p.eval)
    questions = read_jsonl(p.instruct / "eval_questions.jsonl")
    generate_predictions(
        p.stage2,
        questions,
        p.instruct,
        p.predictions,
        batch_size=16,
        max_new_tokens=24,
        model_id="quilt-llava-tiny-demo",
    )
    metrics = score_vqa(questions, read_jsonl(p.predictions), seed=cfg.seed)
    baseline_preds = majority_predictions(read_jsonl(p.instruct / "train.jsonl"), questions)
    write_jsonl(p.baseline_predictions, baseline_preds)
    baseline = score_vqa(questions, baseline_preds, seed=cfg.seed)
    write_json(p.eval / "metrics.json", {"model": metrics, "majority_baseline": baseline})


def write_result(cfg: DemoConfig, p: DemoPaths, step_timings: dict[str, float]) -> DemoResult:
    """The report and ``result.json`` (scores, timings, speech figures, machine)."""
    from quilt_llava.demo.build_report import assemble_report

    scores = read_json(p.eval / "metrics.json")
    timings = dict(step_timings)
    timings["total"] = round(sum(timings.values()), 1)
    report_path = assemble_report(p.out, cfg, scores, timings, equivalent_commands(cfg, p))
    result = DemoResult(
        out_dir=p.out,
        report=report_path,
        metrics=scores["model"],
        baseline=scores["majority_baseline"],
        timings=timings,
        speech=speech_summary(p),
    )
    write_json(
        p.out / "result.json",
        {
            "report": str(report_path),
            "metrics": result.metrics,
            "majority_baseline": result.baseline,
            "beats_baseline": result.beats_baseline,
            "timings": timings,
            "speech": result.speech,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        },
    )
    return result


def run_speech(cfg: DemoConfig, p: DemoPaths, output: Output) -> None:
    """Voice, recognise and correct the narration; record which transcript the demo uses and why."""
    from quilt_llava.demo.speech import hear_sample, speech_unavailable, voice_sample

    if p.speech.exists():
        shutil.rmtree(p.speech)
    p.speech.mkdir(parents=True)
    reason = "turned off (--no-speech)" if not cfg.speech else speech_unavailable(cfg.asr_model)
    if reason is not None:
        output.warn(f"speech: {reason}; the demo uses the scripted transcript instead")
        write_json(p.speech_status, {"used": "script", "reason": reason})
        return
    info = voice_sample(p.video, p.transcript, p.speech / "voice.json")
    output.info(f"  voiced {info['utterances']} lines with espeak-ng ({info['audio_seconds']:.0f} s of audio)")
    llm = None
    if cfg.llm_base_url:
        from quilt_llava.instruct.llm import LLMConfig

        llm = LLMConfig(
            base_url=cfg.llm_base_url,
            model=cfg.llm_model,
            api_key_env=cfg.llm_api_key_env,
            cache_path=p.speech / "llm_cache.sqlite",
        )
    asr = AsrConfig(model=cfg.asr_model, second_pass=cfg.asr_second_pass)
    result = hear_sample(p.video, p.transcript, p.speech, asr, llm, output)
    s = result["scores"]
    output.info(
        f"  ASR ({result['model']}): {result['audio_seconds']:.0f} s of speech in {result['asr_seconds']:.1f} s "
        f"({result['realtime_factor']:.2f} x real time); WER {s['raw']['wer']:.2f} -> "
        f"{s['vocabulary']['wer']:.2f} after the vocabulary, term recall {s['raw']['term_recall']:.2f} -> "
        f"{s['vocabulary']['term_recall']:.2f}"
    )
    used = "llm" if "llm" in s else "vocabulary"
    write_json(
        p.speech_status,
        {
            "used": used,
            "reason": "",
            "transcript": str(p.speech / ("ihc_tour.llm.json" if used == "llm" else "ihc_tour.json")),
        },
    )


def speech_summary(p: DemoPaths) -> dict[str, Any]:
    """Which transcript the demo used (and why), with the speech figures when there was speech."""
    try:
        status = read_json(p.speech_status)
    except (OSError, ValueError):
        return {"used": "script", "reason": "no speech step output"}
    summary = {"used": status.get("used"), "reason": status.get("reason", "")}
    scores_path = p.speech / "scores.json"
    if scores_path.exists():
        scores = read_json(scores_path)
        summary.update(
            {
                k: scores[k]
                for k in (
                    "model",
                    "audio_seconds",
                    "asr_seconds",
                    "realtime_factor",
                    "vocabulary_changes",
                    "right_words_changed",
                    "right_words",
                )
            }
        )
        summary["scores"] = scores["scores"]
    return summary


def narration_transcript(p: DemoPaths) -> Path:
    """The transcript the narratives step reads: the corrected recognition, else the script."""
    try:
        status = read_json(p.speech_status)
    except (OSError, ValueError):
        return p.transcript
    return Path(status["transcript"]) if status.get("transcript") else p.transcript


def region_config(cfg: DemoConfig) -> Any:
    from quilt_llava.instruct.region_qa import RegionQAConfig

    region = RegionQAConfig.from_yaml(REGION_TERMS)
    region.crops_per_cluster = cfg.sizes["crops_per_cluster"]
    region.eval_crops_per_cluster = cfg.sizes["eval_crops_per_cluster"]
    region.seed = cfg.seed
    return region


def train_settings(cfg: DemoConfig, p: DemoPaths, stage: int) -> tuple[str, dict[str, Any]]:
    """The shipped tiny config of ``stage`` and the overrides the demo sets."""
    overrides: dict[str, Any] = {
        "data_path": str(p.instruct / ("align.jsonl" if stage == 1 else "train.jsonl")),
        "image_folder": str(p.instruct),
        "output_dir": str(p.stage1 if stage == 1 else p.stage2),
        "num_train_epochs": cfg.sizes[f"stage{stage}_epochs"],
        "seed": cfg.seed,
    }
    if stage == 2:
        overrides["model_name_or_path"] = str(p.stage1)
    return f"tiny_stage{stage}.yaml", overrides


def equivalent_commands(cfg: DemoConfig, p: DemoPaths) -> list[tuple[str, str]]:
    """The CLI commands that redo each step of this demo run by hand, with its paths."""
    q = shlex.quote
    terms = p.instruct / "region_terms.yaml"
    cmds = [
        (
            "Speech recognition and term correction of the voiced sample (what `--asr-model` runs inside "
            "`narratives extract`; add --llm and the endpoint options for the LLM pass):",
            f"quilt-llava narratives extract {q(str(p.video))} --asr-model {q(cfg.asr_model)} --out /tmp/from_speech\n"
            f"quilt-llava narratives correct {q(str(p.speech / 'ihc_tour.asr.json'))} --out /tmp/corrected.json",
        ),
        (
            "Narratives from the sample video with the demo's transcript:",
            f"quilt-llava narratives extract {q(str(p.video))} --transcript {q(str(narration_transcript(p)))} "
            f"--out {q(str(p.narratives))}\nquilt-llava narratives show {q(str(p.narratives))}",
        ),
        (
            "Region questions and stage-1 data (the vocabulary with this budget's crop counts is "
            "saved next to the data):",
            f"quilt-llava instruct region-qa {q(str(p.narratives / 'narratives.jsonl'))} --terms {q(str(terms))} "
            f"--out {q(str(p.instruct))} --seed {cfg.seed}",
        ),
    ]
    for stage in (1, 2):
        config, overrides = train_settings(cfg, p, stage)
        sets = " ".join(f"--set {k}={q(str(v))}" for k, v in overrides.items())
        cmds.append((f"Training stage {stage}:", f"quilt-llava train --config {config} {sets}"))
    cmds.append(
        (
            "Evaluation and scores:",
            f"quilt-llava eval generate --model {q(str(p.stage2))} --questions "
            f"{q(str(p.instruct / 'eval_questions.jsonl'))} --images {q(str(p.instruct))} "
            f"--out {q(str(p.predictions))} --batch-size 16 --max-new-tokens 24\n"
            f"quilt-llava eval vqa --questions {q(str(p.instruct / 'eval_questions.jsonl'))} "
            f"--predictions {q(str(p.predictions))} --seed {cfg.seed}",
        )
    )
    cmds.append(
        (
            "Chat with the demo model:",
            f"quilt-llava chat --model {q(str(p.stage2))} --image {q(str(p.instruct))}/crops/<a crop>.png\n"
            f"quilt-llava serve --model {q(str(p.stage2))} --examples {q(str(p.instruct / 'crops'))}",
        )
    )
    return cmds


def save_region_terms(region: Any, p: DemoPaths) -> Path:
    """Write the vocabulary with this budget's settings, for the equivalent region-qa command."""
    import yaml

    data = asdict(region)
    path = p.instruct / "region_terms.yaml"
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path


def _run_llm_generators(
    cfg: DemoConfig, train_rows: list[dict[str, Any]], inst_dir: Path, output: Output
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
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
            generator=name,
            narratives=narratives,
            out=out,
            base_url=cfg.llm_base_url or "",
            model=cfg.llm_model,
            api_key_env=cfg.llm_api_key_env,
            cache=inst_dir / "llm_cache.sqlite",
        )
        summary = run_generator(opts, output)
        summaries[name] = {k: summary.get(k) for k in ("records", "rejected", "failed", "calls", "cached")}
        output.info(f"  LLM generator {name}: {summaries[name]}")
        if out.exists():
            records.extend(read_jsonl(out))
    return records, summaries
