"""Term correction with known mistakes: vocabulary pass, checked LLM edits, the CLI, the scores."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quilt_llava.cli import make_app
from quilt_llava.errors import InputError
from quilt_llava.files import read_jsonl
from quilt_llava.narratives.correct import apply_edits, correct_with_vocabulary
from quilt_llava.narratives.transcript import Transcript, transcript_from_records
from quilt_llava.narratives.vocabulary import Vocabulary

pytest.importorskip("rapidfuzz")
pytest.importorskip("jellyfish")
pytest.importorskip("wordfreq")


def timed(text: str, start: float = 0.0, step: float = 0.4) -> Transcript:
    words = [
        {"start": round(start + i * step, 3), "end": round(start + (i + 1) * step - 0.05, 3), "word": w}
        for i, w in enumerate(text.split())
    ]
    return transcript_from_records([{"start": start, "end": words[-1]["end"], "text": text, "words": words}])


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.load()


def test_known_mistakes_are_fixed_with_timings_kept(vocab):
    raw = timed("These tromal cells show hematoxilin counterstain, only blue nuclei of fibroblests.")
    fixed, edits = correct_with_vocabulary(raw, vocab)
    assert fixed.text() == "These stromal cells show haematoxylin counterstain, only blue nuclei of fibroblasts."
    assert [(e.before, e.after) for e in edits] == [
        ("tromal", "stromal"),
        ("hematoxilin", "haematoxylin"),
        ("fibroblests.", "fibroblasts"),
    ]
    before, after = raw.utterances[0].words, fixed.utterances[0].words
    assert len(before) == len(after)
    for b, a in zip(before, after):  # one word for one: the same interval
        assert (a.start, a.end) == (b.start, b.end)


def test_a_run_of_words_becomes_one_term_inside_their_interval(vocab):
    raw = timed("the neo plastic cells")
    fixed, _ = correct_with_vocabulary(raw, vocab)
    assert fixed.text() == "the neoplastic cells"
    [w] = [w for w in fixed.utterances[0].words if w.text == "neoplastic"]
    old = raw.utterances[0].words
    assert (w.start, w.end) == (old[1].start, old[2].end)


def test_a_term_heard_split_around_a_term_is_joined_again(vocab):
    # "inclusions" is a term itself, which kept the run from being touched before the eighth pass
    raw = timed("intranuclear pseudo inclusions and inclusions in a gall bladder")
    fixed, edits = correct_with_vocabulary(raw, vocab)
    assert fixed.text() == "intranuclear pseudoinclusions and inclusions in a gallbladder", fixed.text()
    assert [(e.before, e.after, e.score) for e in edits] == [
        ("pseudo inclusions", "pseudoinclusions", 1.0),
        ("gall bladder", "gallbladder", 1.0),
    ]
    for text in ("basement membrane", "the plasma cells and the neo", "a cell block"):  # joined, no term
        assert correct_with_vocabulary(timed(text), vocab)[1] == []


def test_correct_and_common_words_are_left_alone(vocab):
    text = (
        "The stroma is blue and the tumour glands show strong brown staining; the ground is round, "
        "the nuclei look normal and chromatin is fine."
    )
    fixed, edits = correct_with_vocabulary(timed(text), vocab)
    assert edits == [] and fixed.text() == text


def test_a_term_heard_in_part_is_completed_from_the_words_heard_right(vocab):
    # "invasion" was heard right; the other word of "perineural invasion" alone is no term
    fixed, edits = correct_with_vocabulary(timed("there is perinoral invasion here"), vocab)
    assert fixed.text() == "there is perineural invasion here"
    assert [(e.before, e.after) for e in edits] == [("perinoral invasion", "perineural invasion")]
    # an everyday word beside a term word is not turned into a several-word term
    text = "the blast cells and the red cells"
    assert correct_with_vocabulary(timed(text), vocab)[0].text() == text


def test_a_misplaced_word_boundary_is_moved(vocab):
    raw = timed("the stromover here and the cellulars trauma there")
    fixed, _ = correct_with_vocabulary(raw, vocab)
    assert fixed.text() == "the stroma over here and the cellular stroma there"
    # the new words share the interval of the words they replace
    w = fixed.utterances[0].words
    old = raw.utterances[0].words
    assert (w[1].start, w[2].end) == (old[1].start, old[1].end)
    assert (w[6].start, w[7].end) == (old[5].start, old[6].end)
    # real words are not split or shifted, nor is a boundary at a pause
    for text in ("the nuclei show it", "a carcinoma over there", "cellulars. trauma"):
        assert correct_with_vocabulary(timed(text), vocab)[0].text() == text


def test_context_cues_choose_between_sound_alike_terms(vocab):
    fixed, edits = correct_with_vocabulary(timed("strong membrane staining and the DAB chromatin is dark"), vocab)
    assert fixed.text() == "strong membranous staining and the DAB chromogen is dark"
    assert all(e.detail.get("context") for e in edits)
    for text in (
        "the coarse chromatin of the DAB stained cell",  # chromatin's own cue beside it: kept
        "the cell membrane. Staining is weak",  # the cue is in the next sentence
        "this tumour is lined by flat cells",  # a real word needs the cue right beside it
        "a thin membrane with no staining",  # the cue is two words away from a real term
        "and the hyperplastic cells have",  # another prefix on the cued term's stem: another meaning
    ):
        assert correct_with_vocabulary(timed(text), vocab)[0].text() == text, text


def test_context_cues_are_read_from_vocabulary_files(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("stroma @ desmoplastic, loose\nteratoma\n")
    vocab = Vocabulary.load([terms], builtin=False)
    assert [sorted(t.cues) for t in vocab.terms] == [["desmoplastic", "loose"], []]
    fixed, _ = correct_with_vocabulary(timed("a desmoplastic trauma"), vocab)
    assert fixed.text() == "a desmoplastic stroma"  # teratoma reads closer, but has no cue here
    assert correct_with_vocabulary(timed("a severe trauma"), vocab)[0].text() == "a severe trauma"
    bad = tmp_path / "bad.txt"
    bad.write_text("stroma @ \n")
    with pytest.raises(InputError, match=r"bad.txt:1.*after '@'"):
        Vocabulary.load([bad], builtin=False)


def test_capital_and_punctuation_survive(vocab):
    fixed, _ = correct_with_vocabulary(timed("Tromal, areas"), vocab)
    assert fixed.text() == "Stromal, areas"


def test_text_without_word_timings(vocab):
    raw = transcript_from_records([{"start": 0, "end": 3, "text": "the tromal area"}])
    fixed, edits = correct_with_vocabulary(raw, vocab)
    assert fixed.text() == "the stromal area" and not fixed.has_words and len(edits) == 1


def test_user_vocabulary_adds_terms(tmp_path):
    raw = timed("a emperipolisis here")
    assert correct_with_vocabulary(raw, Vocabulary.load())[0].text() == "a emperipolisis here"
    extra = tmp_path / "mine.txt"
    extra.write_text("# my terms\nemperipolesis\n")
    fixed, _ = correct_with_vocabulary(raw, Vocabulary.load([extra]))
    assert fixed.text() == "a emperipolesis here"
    only = Vocabulary.load([extra], builtin=False)
    assert [t.canonical for t in only.terms] == ["emperipolesis"]


def test_bad_vocabulary_files_are_named(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Vocabulary.load([tmp_path / "none.txt"])
    bad = tmp_path / "bad.txt"
    bad.write_text("stroma\nnecrosis | \n")
    with pytest.raises(InputError, match=r"bad.txt:2"):
        Vocabulary.load([bad])


def test_scores_match_an_independent_wer(vocab):
    jiwer = pytest.importorskip("jiwer")
    from quilt_llava.narratives.speech_metrics import score

    ref = "the stroma stays blue and negative with haematoxylin"
    hyp = "the strongest stays blue negative with hematoxylin and"
    s = score(ref, hyp, vocab)
    # hematoxylin is a listed spelling of haematoxylin: the same word for both tools.
    assert s.wer == pytest.approx(jiwer.wer(ref, hyp.replace("hematoxylin", "haematoxylin")))
    assert (s.terms_found, s.terms) == (1, 2)  # haematoxylin found, stroma not


def test_terms_written_where_none_or_another_was_spoken_are_counted(vocab):
    """A term over a misheard word where another term was said is no recall loss of its own, but it
    is a term nobody said: the score counts it apart, per term past its count in the reference."""
    from quilt_llava.narratives.speech_metrics import score

    ref = "here is the ovary with a follicle and the glomeruli nearby"
    hyp = "here is the glomeruli with a follicle and the glomeruli nearby"
    s = score(ref, hyp, vocab)
    assert (s.terms_found, s.terms, s.terms_unspoken) == (2, 3, 1)
    assert s.term_precision == pytest.approx(2 / 3)
    assert score(ref, ref, vocab).to_dict()["term_precision"] == 1.0
    assert score(ref, "nothing at all", vocab).to_dict()["terms_unspoken"] == 0


def test_damage_counts_right_words_changed(vocab):
    from quilt_llava.narratives.speech_metrics import damage

    ref = "the stroma is blue"
    raw = ["the", "trauma", "is", "blue"]
    assert damage(ref, raw, [(1, 2, "stroma")], vocab) == (0, 3)
    assert damage(ref, raw, [(2, 4, "stromal")], vocab) == (2, 3)


# --------------------------------------------------------------------------- LLM pass


def llm_reply(edits):
    return lambda messages, body: json.dumps({"edits": edits})


def test_llm_edits_are_checked_before_they_apply(vocab, tmp_path):
    from quilt_llava.instruct.llm import LLMConfig
    from quilt_llava.narratives.correct_llm import correct_with_llm
    from tests.fake_openai import FakeOpenAIServer

    raw = timed("here the tumor land shows strong ground staining and blue stroma")
    edits = [
        {"first": 3, "last": 3, "old": "land", "new": "gland"},  # good
        {"first": 6, "last": 6, "old": "ground", "new": "brown"},  # good (sounds alike)
        {"first": 9, "last": 9, "old": "blue", "new": "strongly eosinophilic"},  # a rewrite
        {"first": 4, "last": 4, "old": "strong", "new": "weak"},  # a rewrite
        {"first": 2, "last": 2, "old": "tumour gland", "new": "tumour"},  # old is not what is there
        {"first": 40, "last": 41, "old": "x", "new": "y"},  # outside
        {"first": 3, "last": 3, "old": "land", "new": "glands"},  # overlaps
    ]
    cfg = LLMConfig(base_url="", model="m", api_key_env=None, cache_path=tmp_path / "cache.sqlite", backoff_base_s=0.01)
    with FakeOpenAIServer(responder=llm_reply(edits)) as srv:
        cfg.base_url = srv.base_url
        fixed, applied, rejected = correct_with_llm(raw, vocab, cfg)
        assert fixed.text() == "here the tumor gland shows strong brown staining and blue stroma"
        assert [(e.before, e.after, e.method) for e in applied] == [
            ("land", "gland", "llm"),
            ("ground", "brown", "llm"),
        ]
        reasons = " | ".join(r.reason for r in rejected)
        assert len(rejected) == 5
        for part in ("do not sound alike", "is not the words there", "outside", "overlaps"):
            assert part in reasons
        prompt = srv.requests[0]["messages"][-1]["content"]
        hint = prompt.splitlines()[0]
        assert "[3] land" in prompt
        # the hint names terms close to the chunk's words, not the whole vocabulary
        assert "gland" in hint and "stroma" in hint and "haematoxylin" not in hint
        n = len(srv.requests)
        again, _, _ = correct_with_llm(raw, vocab, cfg)  # resumed/re-run: from the cache
        assert again.text() == fixed.text() and len(srv.requests) == n
    w = fixed.utterances[0].words[3]
    assert (w.start, w.end) == (raw.utterances[0].words[3].start, raw.utterances[0].words[3].end)


def test_llm_prompt_hint_and_example(vocab):
    from quilt_llava.narratives.correct_llm import EXAMPLE_REPLY, EXAMPLE_WORDS, LLMCorrectionConfig, messages_for

    words = ["the", "tromal", "cells", "show", "hematoxelin"]
    short = messages_for(words, vocab)
    assert [m["role"] for m in short] == ["system", "user", "assistant", "user"]
    hint = short[-1]["content"].splitlines()[0]
    assert "stromal" in hint and "haematoxylin" in hint and "carcinoma" not in hint
    assert len(hint.split(", ")) <= LLMCorrectionConfig().hint_terms
    # the worked example's reply is itself an edit list the checks accept
    from quilt_llava.narratives.correct_llm import check_edits, parse_reply

    accepted, rejected = check_edits(parse_reply(EXAMPLE_REPLY), EXAMPLE_WORDS, LLMCorrectionConfig())
    assert len(accepted) == 2 and not rejected
    full = messages_for(words, vocab, LLMCorrectionConfig(hint_terms=0, example=False))
    assert [m["role"] for m in full] == ["system", "user"]
    assert len(full[-1]["content"].splitlines()[0].split(", ")) == len(vocab.terms)


def test_a_reply_cut_off_at_the_token_limit_keeps_its_whole_edits():
    from quilt_llava.narratives.correct_llm import parse_reply

    cut = '{"edits": [{"first": 3, "last": 3, "old": "land", "new": "gland"}, {"first": 6, "la'
    assert parse_reply(cut) == [{"first": 3, "last": 3, "old": "land", "new": "gland"}]
    for bad in ('{"edits": [{"fi', "I think it is fine.", '{"changes": [{"first": 1}]'):
        with pytest.raises(ValueError):
            parse_reply(bad)


def test_llm_unreadable_reply_leaves_text_alone(vocab):
    from quilt_llava.instruct.llm import LLMConfig
    from quilt_llava.narratives.correct_llm import correct_with_llm
    from tests.fake_openai import FakeOpenAIServer

    raw = timed("the tumor land")
    with FakeOpenAIServer(responder=lambda m, b: "I think it is fine.") as srv:
        cfg = LLMConfig(base_url=srv.base_url, model="m", api_key_env=None, cache_path=None, max_retries=0)
        fixed, applied, rejected = correct_with_llm(raw, vocab, cfg)
    assert fixed.text() == "the tumor land" and not applied
    assert "unreadable reply" in rejected[0].reason


def test_apply_edits_rejects_nothing_silently(vocab):
    from quilt_llava.narratives.correct import Edit

    raw = timed("a b c d")
    out = apply_edits(raw, [Edit(0, 1, 3, "b c", "x y z", "llm")])
    assert out.text() == "a x y z d"
    ws = out.utterances[0].words
    assert ws[1].start == raw.utterances[0].words[1].start and ws[3].end == raw.utterances[0].words[2].end


def test_correct_cli_writes_transcript_and_log(tmp_path):
    from tests.fake_openai import FakeOpenAIServer

    src = tmp_path / "raw.json"
    src.write_text(json.dumps(timed("These tromal cells show ground staining").to_whisper_json()))
    out = tmp_path / "fixed.json"
    with FakeOpenAIServer(responder=llm_reply([{"first": 4, "last": 4, "old": "ground", "new": "brown"}])) as srv:
        res = CliRunner().invoke(
            make_app(),
            [
                "narratives",
                "correct",
                str(src),
                "--out",
                str(out),
                "--llm",
                "--base-url",
                srv.base_url,
                "--model",
                "m",
                "--api-key-env",
                "",
                "--json",
                "--quiet",
            ],
        )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["changes"] == 2
    data = json.loads(out.read_text())
    assert data["segments"][0]["text"] == "These stromal cells show brown staining"
    assert data["segments"][0]["words"][1]["word"] == "stromal"
    log = read_jsonl(tmp_path / "fixed.changes.jsonl")
    assert [(r["method"], r["before"], r["after"]) for r in log] == [
        ("vocabulary", "tromal", "stromal"),
        ("llm", "ground", "brown"),
    ]
    assert all("start" in r and "end" in r for r in log)
    assert (tmp_path / "llm_cache.sqlite").exists()


def test_correct_cli_names_a_bad_transcript(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    res = CliRunner().invoke(make_app(), ["narratives", "correct", str(bad), "--out", str(tmp_path / "o.json")])
    assert res.exit_code != 0 and isinstance(res.exception, InputError) and "bad.json" in str(res.exception)


def test_speech_modules_import_without_heavy_libraries():
    """Importing the speech modules loads no model runtime, video or matching library."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import quilt_llava.narratives.asr, quilt_llava.narratives.correct, quilt_llava.narratives.correct_llm\n"
        "import quilt_llava.narratives.speech, quilt_llava.narratives.speech_metrics, quilt_llava.demo.speech\n"
        "import quilt_llava.demo.voice, quilt_llava.narratives.cli\n"
        "heavy = [m for m in ('faster_whisper', 'ctranslate2', 'av', 'torch', 'rapidfuzz', 'jellyfish', 'wordfreq',\n"
        "                     'numpy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_correct_cli_dry_run_sends_and_writes_nothing(tmp_path):
    src = tmp_path / "raw.json"
    src.write_text(json.dumps(timed("These tromal cells show ground staining").to_whisper_json()))
    out = tmp_path / "fixed.json"
    res = CliRunner().invoke(
        make_app(),
        [
            "narratives",
            "correct",
            str(src),
            "--out",
            str(out),
            "--llm",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--dry-run",
            "--json",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"llm_calls": 1, "dry_run": True}
    assert not out.exists() and not (tmp_path / "llm_cache.sqlite").exists()


def test_llm_prompt_snapshot(tmp_path):
    """The LLM correction prompt, so wording changes are deliberate (UPDATE_SNAPSHOTS=1 rewrites it)."""
    import os
    from pathlib import Path

    from quilt_llava.narratives.correct_llm import messages_for

    terms = tmp_path / "terms.txt"
    terms.write_text("stroma\nhaematoxylin | hematoxylin\n")
    messages = messages_for(["the", "tromal", "cells"], Vocabulary.load([terms], builtin=False))
    text = "\n".join(f"--- {m['role']} ---\n{m['content']}" for m in messages) + "\n"
    path = Path(__file__).parent / "snapshots" / "correct_llm.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8")


def test_a_code_is_compared_on_spelling_not_on_sound(vocab):
    # Metaphone drops where the digits sit: "C4d" (a stain, not in the vocabulary) sounded
    # exactly like "CD4" and was changed into it; a near code with the same order still is fixed.
    raw = timed("C4D staining is positive along the capillaries, the Kai67 index is low")
    fixed, edits = correct_with_vocabulary(raw, vocab)
    assert fixed.text() == "C4D staining is positive along the capillaries, the Ki67 index is low"
    assert [(e.before, e.after) for e in edits] == [("Kai67", "Ki67")]
    assert edits[0].detail == {"spelling": 0.889, "sound": 0.889}


def test_several_words_into_more_words_need_the_higher_bar(vocab):
    from quilt_llava.narratives.correct import VocabularyCorrector

    c = VocabularyCorrector(vocab)
    cfg = c.config
    # a phrase rewritten into a longer one: the bar a lone common word needs
    assert c.rewrite_bar(("argue", "against"), ("are", "new", "again"), cfg.min_score) == cfg.common_min_score
    # one word into several ("Chondoride" -> "Congo red") and runs that shrink keep their bar
    assert c.rewrite_bar(("chondoride",), ("congo", "red"), 0.5) == 0.5
    assert c.rewrite_bar(("in", "testinal", "metoplasia"), ("intestinal", "metaplasia"), 0.5) == 0.5
    # the right fix of a several-word term from fewer heard words is still made
    fixed, _ = correct_with_vocabulary(timed("the neo plastic cells"), vocab)
    assert fixed.text() == "the neoplastic cells"


def test_a_heard_pathology_word_is_not_turned_into_a_sibling_term(vocab):
    from dataclasses import replace

    from quilt_llava.narratives.correct import CorrectionConfig, VocabularyCorrector

    # Right words the corrector used to rewrite into another term of the same stem (the twelfth
    # speech pass's tuning sets): a term with a plural ending, other real forms of a term's stem.
    text = (
        "the fibrocytes lie between the fibres, the epithelioid histiocytes gather, "
        "the proliferating cells crowd and the endometrial glands are ulcerated"
    )
    fixed, edits = correct_with_vocabulary(timed(text), vocab)
    assert edits == [] and fixed.text() == text
    c = VocabularyCorrector(vocab)
    assert c.pathology_word("fibrocytes") and c.pathology_word("epithelioid") and c.pathology_word("ulcerated")
    assert not c.pathology_word("fibrodenoma") and not c.pathology_word("histocytes") and not c.pathology_word("round")
    # without the rule the same words are rewritten (what the rule prevents)
    off = VocabularyCorrector(vocab, replace(CorrectionConfig(), form_min_zipf=None))
    assert not off.pathology_word("fibrocytes")
    assert {(e.before, e.after) for e in off.edits(timed(text))} >= {("fibrocytes", "fibrosis")}
    # misheard non-words next to such a stem are still corrected
    fixed, _ = correct_with_vocabulary(timed("the histocytes and the fibrodenoma"), vocab)
    assert fixed.text() == "the histiocytes and the fibroadenoma"


def test_a_term_heard_in_the_singular_where_the_sentence_wants_the_plural_becomes_the_plural(vocab):
    from dataclasses import replace

    from quilt_llava.narratives.correct import CorrectionConfig, VocabularyCorrector

    # The recogniser cannot hear "-sis" from "-ses"; the verb or a counting word says which.
    text = "The mitosis are frequent, and many nucleus lie in two gland of the cortex."
    fixed, edits = correct_with_vocabulary(timed(text), vocab)
    assert fixed.text() == "The mitoses are frequent, and many nuclei lie in two glands of the cortex."
    assert all(e.detail.get("number") for e in edits)
    # the singular stays where the sentence wants it, and across a pause the verb is not its verb
    for kept in (
        "The mitosis is atypical.",
        "Look at this mitosis. Are there more?",
        "The adipocytes of the lobule are separated.",  # the verb is the adipocytes'
        "In this gland are mucin cells.",
    ):
        assert correct_with_vocabulary(timed(kept), vocab)[1] == [], kept
    # a term whose plural is not a term of its own is left alone ("cell" is not a one-word term)
    c = VocabularyCorrector(vocab)
    assert c.plural_of("mitosis") == "mitoses" and c.plural_of("nucleus") == "nuclei"
    assert c.plural_of("mitoses") is None and c.plural_of("ordinary") is None
    # off: as before
    off = replace(CorrectionConfig(), number_agreement=False)
    assert correct_with_vocabulary(timed(text), vocab, off)[1] == []


def test_a_term_heard_in_the_plural_where_a_counting_word_wants_the_singular_becomes_the_singular(vocab):
    from dataclasses import replace

    from quilt_llava.narratives.correct import CorrectionConfig, VocabularyCorrector

    # "a", "each", "one" count one noun; a word between them and the term may be its adjective
    text = (
        "Each keratinocytes near the surface is flat, a large osteoclasts sits in its pit, and a mast cells lies here."
    )
    fixed, edits = correct_with_vocabulary(timed(text), vocab)
    assert fixed.text() == (
        "Each keratinocyte near the surface is flat, a large osteoclast sits in its pit, and a mast cell lies here."
    )
    assert [e.after for e in edits] == ["keratinocyte", "osteoclast", "mast cell"]
    assert all(e.detail.get("number") for e in edits)
    for kept in (
        "A few osteoclasts sit in the pits.",  # a quantity between: plural
        "A pair of osteoclasts and a group of lymphocytes.",  # "of": the noun is the quantity's
        "In a typical melanocytes show pagetoid spread.",  # "a typical" may be "atypical"
        "Look at a gland, osteoclasts lie beside it.",  # a pause between
        "Each field has osteoclasts.",  # the counted noun comes first
        "Another lobule's ducts are dilated.",  # a possessive between
    ):
        assert not [e for e in correct_with_vocabulary(timed(kept), vocab)[1] if e.detail.get("number")], kept
    c = VocabularyCorrector(vocab)
    assert c.singular_of(("mitoses",)) == "mitosis" and c.singular_of(("nuclei",)) == "nucleus"
    assert c.singular_of(("mast", "cells")) == "mast cell"
    assert c.singular_of(("stroma",)) is None and c.singular_of(("osteoclast",)) is None
    off = replace(CorrectionConfig(), number_agreement=False)
    assert correct_with_vocabulary(timed(text), vocab, off)[1] == []
