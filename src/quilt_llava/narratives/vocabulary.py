"""Pathology vocabulary for correcting recognised speech: the shipped list plus user files.

File format (``vocabulary/pathology.txt`` is the shipped one): one term per line, spelling
variants of one term on the same line separated by ``|`` (the first is the form written
into corrected text), ``#`` starts a comment line. Terms may be several words. A line may
end with ``@`` and words often said next to the term (``membranous @ staining, pattern``):
these context cues let the corrector choose the term where the sound alone does not
(see :mod:`quilt_llava.narratives.correct`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from quilt_llava.errors import InputError

BUILTIN = Path(__file__).with_name("vocabulary") / "pathology.txt"
_NON_WORD = re.compile(r"[^0-9a-z]+")


def norm_word(word: str) -> str:
    """Lower case, letters and digits only: how words are compared (``Haematoxylin,`` -> ``haematoxylin``)."""
    return _NON_WORD.sub("", word.lower())


def norm_words(text: str) -> tuple[str, ...]:
    """The compared form of a phrase, one entry per word (hyphens split words)."""
    return tuple(w for w in (norm_word(t) for t in re.split(r"[\s\-/]+", text)) if w)


@dataclass(frozen=True)
class Term:
    canonical: str  # as written into corrected text
    variants: tuple[tuple[str, ...], ...]  # compared forms of every spelling, canonical first
    cues: frozenset[str] = frozenset()  # compared forms of words often said next to the term
    spellings: tuple[str, ...] = ()  # every spelling as written in the file, canonical first


@dataclass
class Vocabulary:
    terms: list[Term] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, extra: list[str | Path] | tuple[str | Path, ...] = (), builtin: bool = True) -> Vocabulary:
        """The shipped vocabulary (unless ``builtin`` is False) plus each file in ``extra``."""
        vocab = cls()
        for path in ([BUILTIN] if builtin else []) + [Path(p) for p in extra]:
            vocab.add_file(path)
        return vocab

    def add_file(self, path: Path) -> None:
        if not path.is_file():
            raise InputError(str(path), "vocabulary file not found")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(str(path), f"not UTF-8 text ({exc.reason})") from None
        seen = self.index()
        for lineno, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line, at, cue_text = line.partition("@")
            spellings = [s.strip() for s in line.split("|")]
            variants = tuple(norm_words(s) for s in spellings)
            if not all(variants):
                raise InputError(f"{path}:{lineno}", f"empty spelling in {line!r} (variants are separated by '|')")
            cues = frozenset(norm_words(cue_text.replace(",", " ")))
            if at and not cues:
                raise InputError(f"{path}:{lineno}", "no context words after '@'")
            if variants[0] in seen:
                continue  # a user file may repeat a shipped term
            term = Term(spellings[0], variants, cues, tuple(spellings))
            self.terms.append(term)
            for v in variants:
                seen[v] = term
        self.sources.append(str(path))

    def index(self) -> dict[tuple[str, ...], Term]:
        """Every spelling's compared form -> its term."""
        return {v: t for t in self.terms for v in t.variants}

    def canonical_form(self) -> dict[tuple[str, ...], tuple[str, ...]]:
        """Spelling -> the canonical spelling's compared form (for variant-blind scoring)."""
        return {v: t.variants[0] for t in self.terms for v in t.variants}

    def fingerprint(self) -> str:
        """A short hash of every term, spelling and cue: whether two vocabularies are the same."""
        import hashlib

        text = "\n".join("|".join(" ".join(v) for v in t.variants) + "@" + ",".join(sorted(t.cues)) for t in self.terms)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def words(self) -> frozenset[str]:
        """Every single word that occurs in some term."""
        return frozenset(w for t in self.terms for v in t.variants for w in v)
