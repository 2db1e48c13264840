"""Correcting recognised speech with an LLM, as checked word-level edits.

The transcript is sent in chunks of whole utterances (about ``chunk_words`` words),
every word numbered, with the vocabulary's terms as a hint. The model is asked to fix
only words the recogniser misheard and to answer with JSON edits, each naming a range
of word numbers, the words it found there and their replacement::

    {"edits": [{"first": 12, "last": 13, "old": "hematoxelin nucleon", "new": "haematoxylin nuclei"}]}

Every edit is checked before it is applied, and rejected with a reason otherwise: the
numbers must lie inside the chunk and not overlap an accepted edit, ``old`` must be the
words at those numbers, a range spans at most ``max_span`` words and ``new`` at most
``max_span + 1``, and ``old`` and ``new`` must sound or read alike (``min_similarity``:
a recognition error, not a rewrite). Accepted edits keep the time span of the words they
replace (:func:`~quilt_llava.narratives.correct.apply_edits`).

Calls go through :class:`~quilt_llava.instruct.llm.LLMClient`, so the endpoint options,
retries and the SQLite response cache are those of ``instruct``: a re-run, or a run
resumed after an interruption, sends only the chunks it has no reply for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from quilt_llava.narratives.correct import Edit, VocabularyCorrector, apply_edits, sound_key, tokens_of
from quilt_llava.narratives.transcript import Transcript
from quilt_llava.narratives.vocabulary import Vocabulary, norm_word, norm_words

SYSTEM_PROMPT = (
    "You proofread automatic speech recognition of pathology teaching videos. The recogniser often "
    "hears a medical term as ordinary words that sound alike. Fix only such misheard words. Do not "
    "rephrase, fix grammar, add or drop content, or change spelling conventions. "
    "Answer with one JSON object and nothing else."
)

USER_TEMPLATE = """Pathology terms that may occur: {terms}

Numbered words of the transcript:
{numbered}

Answer {{"edits": [...]}}. Each edit is one misheard stretch: "first" and "last" are the numbers of its first and last word (the same number for one word), "old" repeats those words exactly, "new" is what was most likely said. Answer {{"edits": []}} if nothing was misheard."""

# One worked exchange sent before the real chunk: small models copy the answer's form from it.
# The sentence is made up for this purpose (it is in no benchmark set).
EXAMPLE_WORDS = tuple(
    ["the", "biopsy", "shows", "a", "dense", "lymph", "of", "site", "infiltrate", "around", "the", "small", "ducked"]
)
EXAMPLE_TERMS = ("lymphocyte", "lymphocytic", "infiltrate", "ducts", "duct", "biopsy")
EXAMPLE_REPLY = (
    '{"edits": [{"first": 5, "last": 7, "old": "lymph of site", "new": "lymphocytic"}, '
    '{"first": 12, "last": 12, "old": "ducked", "new": "duct"}]}'
)


@dataclass
class LLMCorrectionConfig:
    # Short chunks and a short term list keep the prompt within what a small model follows.
    chunk_words: int = 60
    # Terms named in the prompt: the ones closest in sound or spelling to the chunk's words
    # (0: every term of the vocabulary, as a large model can take).
    hint_terms: int = 30
    hint_min_score: float = 0.5  # how close (spelling and sound, 0-1) a hinted term must be to some words
    example: bool = True  # send one worked exchange before the chunk (see EXAMPLE_WORDS)
    max_span: int = 4
    min_similarity: float = 0.45  # best of spelling and sound similarity between old and new


@dataclass(frozen=True)
class Rejected:
    chunk: int
    edit: Any
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"method": "llm", "rejected": True, "chunk": self.chunk, "edit": self.edit, "reason": self.reason}


def chunks(transcript: Transcript, chunk_words: int) -> list[list[tuple[int, int]]]:
    """Groups of (utterance, word index) with whole utterances, about ``chunk_words`` each."""
    groups: list[list[tuple[int, int]]] = [[]]
    for ui, u in enumerate(transcript.utterances):
        if groups[-1] and len(groups[-1]) + len(tokens_of(u)) > chunk_words:
            groups.append([])
        groups[-1].extend((ui, wi) for wi in range(len(tokens_of(u))))
    return [g for g in groups if g]


def hint_terms(words: list[str], corrector: VocabularyCorrector, limit: int, min_score: float = 0.5) -> list[str]:
    """Up to ``limit`` terms, closest first, to the runs of one or two of ``words`` (0: every term)."""
    if limit <= 0:
        return [t.canonical for t in corrector.vocabulary.terms]
    norms = [norm_word(w) for w in words]
    best: dict[str, float] = {}
    for i in range(len(norms)):
        for n in (1, 2):
            run = tuple(norms[i : i + n])
            if len(run) < n or not all(run):
                continue
            if (heard := corrector.term_of(run)) is not None:  # a term already heard stays in the hint
                found = (heard, 1.0)
            else:
                match = corrector.best_term(run)
                found = (match[0], match[1]) if match else None
            if found and found[1] >= min_score and found[1] > best.get(found[0].canonical, 0.0):
                best[found[0].canonical] = found[1]
    return sorted(best, key=lambda t: -best[t])[:limit]


def _numbered(words: list[str]) -> str:
    return " ".join(f"[{i}] {w}" for i, w in enumerate(words))


def messages_for(
    words: list[str], vocabulary: Vocabulary, config: LLMCorrectionConfig | None = None, corrector: Any = None
) -> list[dict[str, str]]:
    cfg = config or LLMCorrectionConfig()
    corrector = corrector or VocabularyCorrector(vocabulary)
    terms = ", ".join(hint_terms(words, corrector, cfg.hint_terms, cfg.hint_min_score))
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    if cfg.example:
        example = USER_TEMPLATE.format(terms=", ".join(EXAMPLE_TERMS), numbered=_numbered(EXAMPLE_WORDS))
        messages += [{"role": "user", "content": example}, {"role": "assistant", "content": EXAMPLE_REPLY}]
    messages.append({"role": "user", "content": USER_TEMPLATE.format(terms=terms, numbered=_numbered(words))})
    return messages


def parse_reply(text: str) -> list[Any]:
    """The ``edits`` list of a reply (tolerates a fenced code block), or ValueError.

    A reply cut off mid-list (the token limit) gives the edits that were complete.
    """
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.S)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        complete = _complete_edits(body)
        if complete is None:
            raise ValueError(str(exc)) from None
        return complete
    if not isinstance(data, dict) or not isinstance(data.get("edits"), list):
        raise ValueError("expected a JSON object with an 'edits' list")
    return data["edits"]


def _complete_edits(body: str) -> list[Any] | None:
    """The whole objects at the start of a cut-off ``{"edits": [...`` reply, or None if none."""
    opening = re.match(r'\s*\{\s*"edits"\s*:\s*\[', body)
    if opening is None:
        return None
    decoder, pos, found = json.JSONDecoder(), opening.end(), []
    while True:
        pos = len(body) - len(body[pos:].lstrip(" \n\t,"))
        try:
            item, pos = decoder.raw_decode(body, pos)
        except json.JSONDecodeError:
            break
        found.append(item)
    return found or None


def check_edits(
    raw: list[Any], words: list[str], cfg: LLMCorrectionConfig
) -> tuple[list[tuple[int, int, str]], list[tuple[Any, str]]]:
    """(accepted (first, last exclusive, new), rejected (edit, reason)) for one chunk."""
    from rapidfuzz import fuzz

    accepted: list[tuple[int, int, str]] = []
    rejected: list[tuple[Any, str]] = []
    taken: set[int] = set()
    for edit in raw:
        if not isinstance(edit, dict):
            rejected.append((edit, "not an object"))
            continue
        first, last, old, new = edit.get("first"), edit.get("last"), edit.get("old"), edit.get("new")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)):
            rejected.append((edit, "first and last must be word numbers"))
        elif not (0 <= first <= last < len(words)):
            rejected.append((edit, f"word numbers outside 0-{len(words) - 1}"))
        elif last - first + 1 > cfg.max_span:
            rejected.append((edit, f"spans more than {cfg.max_span} words"))
        elif not isinstance(old, str) or not isinstance(new, str) or not norm_words(new):
            rejected.append((edit, "old and new must be non-empty strings"))
        elif norm_words(old) != tuple(norm_word(w) for w in words[first : last + 1] if norm_word(w)):
            rejected.append((edit, f"old {old!r} is not the words there ({' '.join(words[first : last + 1])!r})"))
        elif len(new.split()) > cfg.max_span + 1:
            rejected.append((edit, f"new text longer than {cfg.max_span + 1} words"))
        elif set(range(first, last + 1)) & taken:
            rejected.append((edit, "overlaps an earlier edit"))
        elif norm_words(old) == norm_words(new):
            rejected.append((edit, "changes nothing"))
        else:
            a, b = norm_words(old), norm_words(new)
            spelling = fuzz.ratio("".join(a), "".join(b)) / 100
            sound = fuzz.ratio(sound_key(a), sound_key(b)) / 100
            if max(spelling, sound) < cfg.min_similarity:
                rejected.append(
                    (edit, f"old and new do not sound alike ({max(spelling, sound):.2f}); not a recognition error")
                )
                continue
            taken.update(range(first, last + 1))
            accepted.append((first, last + 1, new.strip()))
    return accepted, rejected


def correct_with_llm(
    transcript: Transcript,
    vocabulary: Vocabulary,
    llm_config: Any,
    config: LLMCorrectionConfig | None = None,
    output: Any = None,
) -> tuple[Transcript, list[Edit], list[Rejected]]:
    """Ask the LLM for edits chunk by chunk, check them, apply the accepted ones.

    A chunk whose call failed or whose reply did not parse is reported in the rejected
    list (reason ``call failed: ...``) and left unchanged; the rest go on.
    """
    from quilt_llava.instruct.llm import ChatRequest, LLMClient

    cfg = config or LLMCorrectionConfig()
    groups = chunks(transcript, cfg.chunk_words)
    token_lists = [tokens_of(u) for u in transcript.utterances]
    requests = []
    corrector = VocabularyCorrector(vocabulary)
    for ci, group in enumerate(groups):
        words = [token_lists[ui][wi] for ui, wi in group]
        requests.append(ChatRequest(key=str(ci), messages=messages_for(words, vocabulary, cfg, corrector)))
    client = LLMClient(llm_config, output=output)
    try:
        results = client.run(requests)
    finally:
        client.close()
    edits: list[Edit] = []
    rejected: list[Rejected] = []
    for ci, (group, result) in enumerate(zip(groups, results)):
        if not result.ok:
            rejected.append(Rejected(ci, None, f"call failed: {result.error}"))
            continue
        try:
            raw = parse_reply(result.text or "")
        except ValueError as exc:
            rejected.append(Rejected(ci, None, f"unreadable reply: {exc}"))
            continue
        words = [token_lists[ui][wi] for ui, wi in group]
        accepted, bad = check_edits(raw, words, cfg)
        rejected.extend(Rejected(ci, e, reason) for e, reason in bad)
        for first, last, new in accepted:
            positions = group[first:last]
            if len({ui for ui, _ in positions}) > 1:
                rejected.append(
                    Rejected(ci, {"first": first, "last": last - 1, "new": new}, "crosses an utterance boundary")
                )
                continue
            ui = positions[0][0]
            edits.append(Edit(ui, positions[0][1], positions[-1][1] + 1, " ".join(words[first:last]), new, "llm"))
    return apply_edits(transcript, edits), edits, rejected
