"""Cost of the recogniser's alternative hypotheses (or, ``--source spans``, of the re-joined and
re-cut runs of ``narratives.correct_spans``) in the acoustic check, timed interleaved.

The acoustic check (``narratives.acoustic_check.correct_heard``) is run on each set's kept
first-pass recognition (``benchmarks/asr_bench.py --keep DIR`` writes them) with the alternatives
off and on, alternately (off, on in odd rounds; on, off in even ones) in one process, so the load of
other jobs on a shared machine falls on both alike. Prints each run and the totals: seconds, x real
time, and the ratio on / off (the baseline), plus encoder windows, forced texts and re-decodes.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/asr_alternatives_timing.py --keep DIR
[--set NAME ...] [--rounds 2] [--source alternatives|spans]`` (the other source stays as the default has it)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from quilt_llava.files import read_json
from quilt_llava.narratives.acoustic_check import AcousticCheck, AcousticConfig, correct_heard
from quilt_llava.narratives.asr import SAMPLE_RATE, AsrConfig, load_model, read_audio
from quilt_llava.narratives.asr_alternatives import AlternativesConfig
from quilt_llava.narratives.correct_spans import SpanConfig
from quilt_llava.narratives.transcript import transcript_from_records
from quilt_llava.narratives.vocabulary import Vocabulary

TUNING = ("demo", "heldout", "heldout2", "heldout3")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, required=True, help="the folder asr_bench.py --keep wrote")
    ap.add_argument("--set", action="append", help="a set to time (repeatable; default: the tuning sets)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--source", choices=("alternatives", "spans"), default="alternatives", help="the source timed")
    args = ap.parse_args(argv)
    names = args.set or list(TUNING)
    missing = [n for n in names if not (args.keep / f"{n}.json").is_file() or not (args.keep / f"{n}.wav").is_file()]
    if missing:
        print(
            f"no kept recognition in {args.keep} for: {', '.join(missing)} (run asr_bench.py --keep)", file=sys.stderr
        )
        return 1
    model = load_model(AsrConfig(model="tiny.en"))
    vocab = Vocabulary.load()
    on = AcousticConfig()
    on = on if on.alternatives is not None else replace(on, alternatives=AlternativesConfig())
    on = on if on.spans is not None else replace(on, spans=SpanConfig())
    modes = {"off": replace(on, **{args.source: None}), "on": on}
    sets = {}
    for name in names:
        data = read_json(args.keep / f"{name}.json")
        records = data["bench"].get("first_pass") or data["segments"]
        sets[name] = (transcript_from_records(records, name), read_audio(args.keep / f"{name}.wav")[0])
    audio_s = sum(len(audio) / SAMPLE_RATE for _t, audio in sets.values())
    total = dict.fromkeys(modes, 0.0)
    work: dict[str, list[int]] = {m: [0, 0, 0] for m in modes}
    for rnd in range(args.rounds):
        for name, (transcript, audio) in sets.items():
            for mode in ("off", "on") if rnd % 2 == 0 else ("on", "off"):
                check = AcousticCheck(model, vocab, modes[mode])
                t0 = time.perf_counter()
                correct_heard(transcript, vocab, audio, check)
                dt = time.perf_counter() - t0
                total[mode] += dt
                if rnd == 0:
                    work[mode] = [a + b for a, b in zip(work[mode], (check.windows, check.texts, check.decodes))]
                print(f"round {rnd} {name:9} {mode:3} {dt:7.2f} s", flush=True)
    per_round = {m: total[m] / args.rounds for m in modes}
    print(
        json.dumps(
            {
                "sets": names,
                "audio_s": round(audio_s, 1),
                "seconds_per_round": {m: round(v, 1) for m, v in per_round.items()},
                "x_real_time": {m: round(v / audio_s, 3) for m, v in per_round.items()},
                "ratio_on_off": round(per_round["on"] / per_round["off"], 2),
                "windows_texts_decodes": work,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
