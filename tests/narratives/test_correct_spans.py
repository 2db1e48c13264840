"""Far-tier candidates over runs of heard words that the corrector's rules never look at
(narratives.correct_spans, tenth pass): what they offer and what they refuse, text only."""

from __future__ import annotations

import pytest

from quilt_llava.errors import ConfigError
from quilt_llava.narratives.transcript import Transcript, Utterance

pytest.importorskip("rapidfuzz")
pytest.importorskip("jellyfish")
pytest.importorskip("wordfreq")


@pytest.fixture(scope="module")
def corrector():
    from quilt_llava.narratives.correct import VocabularyCorrector
    from quilt_llava.narratives.vocabulary import Vocabulary

    return VocabularyCorrector(Vocabulary.load())


def offered(text: str, corrector, **options) -> dict[str, str]:
    """``before -> after`` of every candidate for ``text`` (one utterance), with its kind."""
    from quilt_llava.narratives.correct_spans import SpanConfig, span_edits

    edits = span_edits(Transcript([Utterance(0.0, 1.0, text)]), corrector, SpanConfig(**options))
    return {f"{e.before} -> {e.after}": e.detail["span"] for e in edits}


@pytest.mark.parametrize(
    ("text", "edit", "kind"),
    [
        # a several-word term whose heard part holds a term word and a word split in two
        ("we see reed stern nerve cells here", "reed stern nerve cells -> Reed Sternberg cells", "rejoined"),
        # an everyday word beside the heard part of a term (the corrector leaves "main" alone)
        ("around the central main there", "central main -> central vein", "rejoined"),
        # a term merged with the short word after it, the term's other form heard
        ("strong membrane as staining", "membrane as -> membranous", "rejoined"),
        ("the alveoli or walls", "alveoli or -> alveolar", "rejoined"),
        # a control: a boundary move would take a heard term apart ("rtumour" -> "tumour")
        ("with larger tumour nuclei", "larger tumour -> large tumour", None),
    ],
)
def test_runs_the_corrector_never_compares_are_offered(corrector, text, edit, kind):
    found = offered(text, corrector)
    if kind is None:
        assert edit not in found, found
        return
    assert found.get(edit) == kind, found
    # none of these is a candidate of the corrector itself, even at its loosest bars
    own = {f"{e.before} -> {e.after}" for es in corrector.candidates(Transcript([Utterance(0, 1, text)])) for e in es}
    assert edit not in own


def test_a_recut_boundary_leaves_an_everyday_word_and_a_term(corrector):
    found = offered("the gallant wall is thick", corrector)
    assert found.get("gallant wall -> gland all") == "recut", found
    # with a meaning-changing prefix it is the option's to allow ("larger typical" -> "large atypical")
    assert "larger typical -> large atypical" not in offered("with larger typical nuclei", corrector)
    allowed = offered("with larger typical nuclei", corrector, meaning_prefixes=True)
    assert allowed.get("larger typical -> large atypical") == "recut", allowed


@pytest.mark.parametrize(
    ("heard", "meant", "reason"),
    [
        (("goblet", "cells", "in"), ("goblet", "cells"), "the term is heard there"),
        (("cell", "carcinoma"), ("basal", "cell", "carcinoma"), "words added with nothing heard for them"),
        (("membrane", "as"), ("membranes",), "only the number changes or words go"),
        (("tumour", "is"), ("tumours",), "only the number changes or words go"),
        (("the", "basement", "membranes"), ("basement", "membrane"), "only the number changes or words go"),
        (("the", "typical"), ("atypical",), "a meaning-changing prefix"),
        (("the", "section"), ("the", "resection"), "a meaning-changing prefix"),
        (("the", "nucleus"), ("the", "nuclei"), "only the number changes or words go"),
        (("the", "granular"), ("the", "granuloma"), "another form of a term word"),
        (("significant", "ring", "cell"), ("signet", "ring", "cells"), None),  # more than the number changes
    ],
)
def test_refusals_that_guard_right_words(corrector, heard, meant, reason):
    from quilt_llava.narratives.correct_spans import SpanConfig, refusal

    assert refusal(heard, meant, corrector, SpanConfig()) == reason


def test_a_pause_inside_a_run_and_heard_terms_in_a_recut_are_left_alone(corrector):
    assert not any(k.startswith("land, a") for k in offered("the land, a field", corrector))
    assert not any(k.startswith("granulomas, they") for k in offered("granulomas, they are", corrector))
    # "membranes are" is not re-cut into "membranous re": a heard term stays whole at a boundary
    assert all(kind == "rejoined" for k, kind in offered("the membranes are thick", corrector).items())


def test_right_text_offers_little(corrector):
    text = "the goblet cells are fine and the basement membrane is intact"
    assert offered(text, corrector) == {}


def test_config_errors_are_listed_together():
    from quilt_llava.narratives.correct_spans import SpanConfig

    with pytest.raises(ConfigError) as err:
        SpanConfig(max_words=1, min_score=0, per_run=0, shift=9).validate()
    assert len(err.value.problems) == 4


def test_spans_are_on_by_default_and_off_with_the_option(monkeypatch, tmp_path):
    # on since the tenth pass (docs/BENCHMARKS.md, Speech): --no-acoustic-spans -> CorrectOptions.spans
    # -> AcousticConfig.spans None; the CLI of narratives correct and extract has the option
    from typer.testing import CliRunner

    from quilt_llava.cli import make_app
    from quilt_llava.narratives.acoustic_check import AcousticConfig
    from quilt_llava.narratives.correct_spans import SpanConfig
    from quilt_llava.narratives.speech import CorrectOptions
    from tests.speech import acoustic_configs

    assert AcousticConfig().spans == SpanConfig()
    assert CorrectOptions(transcript=tmp_path / "t.json", out=tmp_path / "o.json").spans
    configs = acoustic_configs(monkeypatch, tmp_path, "spans", (False, True))
    assert [c.spans for c in configs] == [None, SpanConfig()]
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps the help at the terminal's width
    for command in ("correct", "extract"):
        shown = CliRunner().invoke(make_app(), ["narratives", command, "--help"]).output
        assert "--no-acoustic-spans" in shown, shown
