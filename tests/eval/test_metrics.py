"""Metrics against hand-computed numbers and nltk, one test per normalisation quirk."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from nltk.translate.bleu_score import sentence_bleu

from quilt_llava.eval.metrics import (
    CONTRACTIONS,
    IdMismatchError,
    bootstrap_ci,
    closed_correct,
    closed_label,
    evaluate_vqa,
    normalize_answer,
    open_score,
    parse_choice,
    score_vqa,
)
from quilt_llava.eval.questions import EvalQuestion

# --- normalisation -----------------------------------------------------------


def test_lowercase_and_articles_dropped():
    assert normalize_answer("The Nucleus of a Cell is an Organelle") == "nucleus of cell is organelle"


def test_slash_between_letters_becomes_space():
    assert normalize_answer("H/E stain") == "h e stain"


def test_slash_touching_a_space_is_deleted_everywhere():
    # " /" occurs once, so every "/" in the text is deleted, including "a/b".
    assert normalize_answer("h / e and a/b") == "h e and ab"


def test_quote_handling():
    assert normalize_answer('x"y') == "x y"
    assert normalize_answer('the "nucleus" here') == "nucleus here"


def test_digit_comma_digit_deletes_slash_and_quote_then_commas():
    # A digit-comma-digit anywhere switches "/" to deletion; commas go at the end.
    assert normalize_answer("1,000 cells/field") == "1000 cellsfield"
    assert normalize_answer("cells/field") == "cells field"


def test_period_not_followed_by_digit_is_deleted():
    assert normalize_answer("Cells. Size 3.5 mm.") == "cells size 3.5 mm"
    assert normalize_answer("e.g. this") == "eg this"
    assert normalize_answer(".5 mm") == ".5 mm"


def test_release_deletes_at_most_32_periods_per_pass():
    text = "x." * 40
    assert normalize_answer(text) == "x" * 32 + "x." * 8
    assert normalize_answer(normalize_answer(text)) == "x" * 40


def test_contractions_expanded_but_capital_keys_never_match():
    assert normalize_answer("I dont know") == "i don't know"
    assert normalize_answer("it isnt") == "it isn't"
    assert normalize_answer("Im sure") == "im sure"  # table key is "Im"; text is lowercased first
    assert CONTRACTIONS["somebody'd"] == "somebodyd"
    assert len(CONTRACTIONS) == 120


def test_commas_follow_the_punctuation_rule():
    # "," is one of the 21 characters: deleted when it touches a space, else a space.
    assert normalize_answer("red, blue") == "red blue"
    assert normalize_answer("red,blue") == "red blue"
    assert normalize_answer("red,blue, green") == "redblue green"


def test_number_words_become_digits():
    assert normalize_answer("two nuclei") == "2 nuclei"
    assert normalize_answer("None of the ten") == "0 of 10"


def test_brackets_and_exclamation_are_normalised():
    assert normalize_answer("(benign)!") == "benign"
    assert normalize_answer("(benign) tumour!") == "benign tumour"


# --- open questions -------------------------------------------------------------


def test_open_scores_by_hand():
    # answer "a red cell" -> {red, cell}; prediction "red cells present" -> {red, cells, present}
    s = open_score("red cells present", "a red cell")
    tp, fp, fn = 1, 2, 1
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert s.recall == pytest.approx(0.5)
    assert s.precision == pytest.approx(precision)
    assert s.f1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert s.f1 == pytest.approx(0.4)
    assert s.exact_match == pytest.approx(1 / 3)


def test_tp_counts_prediction_occurrences():
    # "tumor" twice in the prediction, once in the answer: tp = 2 (prediction's count).
    s = open_score("tumor tumor", "tumor cells")
    assert s.precision == pytest.approx(1.0)
    assert s.recall == pytest.approx(2 / 3)
    # exact match: distinct answer words found (1) / prediction tokens (2)
    assert s.exact_match == pytest.approx(0.5)


def test_open_zero_rules():
    for pred, ans in (("", "tumor"), ("tumor", ""), ("the", "tumor"), ("benign", "malignant")):
        s = open_score(pred, ans)
        assert (s.recall, s.precision, s.f1) == (0.0, 0.0, 0.0)
    assert open_score("", "tumor").exact_match == 0.0


@pytest.mark.parametrize(
    ("pred", "ans"),
    [
        ("red cells are present in the stroma", "red cells present in stroma"),
        ("large atypical nuclei", "the nuclei are large and atypical"),
        ("H/E stain shows necrosis.", "necrosis"),
        ("nothing", "granuloma with giant cells"),
    ],
)
def test_bleu_matches_nltk_on_normalised_tokens(pred, ans):
    s = open_score(pred, ans)
    ref, hyp = normalize_answer(ans).split(), normalize_answer(pred).split()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert s.bleu == pytest.approx(sentence_bleu([ref], hyp))
        assert s.bleu1 == pytest.approx(sentence_bleu([ref], hyp, weights=(1, 0, 0, 0)))
        assert s.bleu2 == pytest.approx(sentence_bleu([ref], hyp, weights=(0, 1, 0, 0)))
        assert s.bleu3 == pytest.approx(sentence_bleu([ref], hyp, weights=(0, 0, 1, 0)))


# --- closed questions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "label"),
    [
        ("No, it is benign.", "no"),
        ("There is no evidence of malignancy", "no"),
        ("This is not a carcinoma", "no"),
        ("Not.", "no"),
        ("Yes, not really", "no"),  # quirk: any "not" wins
        ("Noted, it is malignant", "yes"),  # "noted" is not "no"
        ("I dont know", "yes"),  # becomes "don't", not "not"
    ],
)
def test_closed_rule(pred, label):
    assert closed_label(pred) == label


def test_closed_slash_split():
    assert closed_label("no/yes") == "no"  # "/" becomes a space: words "no", "yes"
    assert closed_label("no, yes") == "no"


def test_closed_prefers_yes_no_answer():
    q = EvalQuestion("1", "Is it benign?", "The lesion is a benign nevus", "closed", yes_no_answer="Yes")
    assert closed_correct("Yes it is", q)
    assert not closed_correct("It is not", q)


# --- multiple choice ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "letter"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("D: Necrosis", "D"),
        ("A.", "A"),
        ("The answer is C", "C"),
        ("Option: B", "B"),
        ("A tumor is seen; granuloma", "C"),  # leading "A " is the article; choice text found
        ("something unrelated", None),
        ("fibrosis or granuloma", None),  # two choice texts: ambiguous
    ],
)
def test_parse_choice(pred, letter):
    choices = ["Fibrosis", "Edema", "Granuloma", "Necrosis"]
    assert parse_choice(pred, choices) == letter


# --- bootstrap ----------------------------------------------------------------------


def test_bootstrap_ci_properties():
    values = [1.0] * 30 + [0.0] * 70
    lo, hi = bootstrap_ci(values, n_resamples=2000, seed=1)
    assert lo < 0.3 < hi
    assert lo > 0.15 and hi < 0.45
    assert bootstrap_ci(values, n_resamples=2000, seed=1) == (lo, hi)
    assert bootstrap_ci([0.5]) == (0.5, 0.5)
    assert bootstrap_ci([]) is None
    lo2, hi2 = bootstrap_ci(values * 10, n_resamples=2000, seed=1)
    assert hi2 - lo2 < hi - lo


# --- whole files -----------------------------------------------------------------


QUESTIONS = [
    {"id": "q1", "question": "What is seen?", "answer": "a red cell", "answer_type": "OPEN"},
    {"id": "q2", "question": "Which stain?", "answer": "H&E", "answer_type": "OPEN"},
    {"id": "q3", "question": "Malignant?", "answer": "Yes, malignant", "yes_no_answer": "yes", "answer_type": "CLOSED"},
    {"id": "q4", "question": "Benign?", "answer": "no", "answer_type": "CLOSED"},
    {"id": "q5", "question": "Necrosis?", "answer": "yes", "answer_type": "CLOSED"},
]
PREDICTIONS = [
    {"question_id": "q1", "text": "red cells present"},
    {"question_id": "q2", "text": "H&E"},
    {"question_id": "q3", "text": "It is malignant."},
    {"question_id": "q4", "text": "It is not benign"},
    {"question_id": "q5", "text": "No necrosis"},
]


def test_score_vqa_by_hand():
    s = score_vqa(QUESTIONS, PREDICTIONS, n_resamples=200)
    assert (s["n"], s["n_open"], s["n_closed"], s["n_choice"]) == (5, 2, 3, 0)
    assert s["open_recall"] == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert s["open_precision"] == pytest.approx(100 * (1 / 3 + 1.0) / 2)
    assert s["open_f1"] == pytest.approx(100 * (0.4 + 1.0) / 2)
    assert s["open_exact_match"] == pytest.approx(100 * (1 / 3 + 1.0) / 2, abs=1e-3)
    assert s["closed_accuracy"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert s["choice_accuracy"] is None
    lo, hi = s["open_recall_ci"]
    assert lo <= s["open_recall"] <= hi
    assert s["closed_accuracy_ci"][0] >= 0 and s["closed_accuracy_ci"][1] <= 100


def test_ids_must_match_one_to_one():
    preds = [*PREDICTIONS[1:], {"question_id": "zz9", "text": "x"}, {"question_id": "q2", "text": "y"}]
    with pytest.raises(IdMismatchError) as info:
        evaluate_vqa(QUESTIONS, preds)
    msg = str(info.value)
    assert "q1" in msg and "zz9" in msg and "duplicate" in msg
    assert info.value.missing == ["q1"] and info.value.extra == ["zz9"] and info.value.duplicates == ["q2"]


def test_integer_ids_match_string_ids():
    qs = [{"question_id": 7, "text": "Q?", "answer": "yes", "answer_type": "closed"}]
    assert score_vqa(qs, [{"question_id": "7", "text": "yes"}])["closed_accuracy"] == 100.0


def test_metrics_import_without_torch():
    code = "import sys, quilt_llava.eval.metrics, quilt_llava.eval.questions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_nan_free_when_no_overlap():
    s = open_score("x", "y")
    assert not any(math.isnan(v) for v in (s.bleu, s.bleu1, s.bleu2, s.bleu3))


def test_choice_accuracy_by_hand():
    choices = ["Fibrosis", "Edema", "Granuloma", "Necrosis"]
    qs = [EvalQuestion(str(i), "Which?", letter, "choice", choices=choices) for i, letter in enumerate("BCDA")]
    preds = [
        {"question_id": "0", "text": "B"},
        {"question_id": "1", "text": "The answer is C."},
        {"question_id": "2", "text": "A tumor"},
        {"question_id": "3", "text": "(A) Fibrosis"},
    ]
    result = evaluate_vqa(qs, preds, n_resamples=100)
    assert result.summary["choice_accuracy"] == pytest.approx(75.0)
    assert result.summary["n_choice"] == 4 and result.summary["open_recall"] is None
    assert [r["label"] for r in result.per_question] == ["B", "C", None, "A"]


# --- closed rule: answer in prediction (SLAKE, VQA-RAD) ------------------------------


@pytest.mark.parametrize(
    ("pred", "answer", "hit"),
    [
        ("The left lung.", "Left Lung", True),
        ("It is in the left lung, lower lobe", "left lung", True),
        ("right lung", "left lung", False),
        ("CT", "CT", True),
        ("This is an MRI", "CT", False),
        ("Yes", "yes", True),
        ("normal", "no", False),  # whole words: "no" is not inside "normal"
        ("No, it is not.", "no", True),
        ("anything", "", False),
    ],
)
def test_answer_in_prediction_rule(pred, answer, hit):
    q = EvalQuestion("1", "Where?", answer, "closed")
    assert closed_correct(pred, q, rule="answer_in_prediction") is hit


def test_closed_rule_changes_closed_accuracy_only():
    qs = [
        EvalQuestion("a", "Which side?", "Left", "closed"),
        EvalQuestion("b", "Modality?", "CT", "closed"),
        EvalQuestion("c", "Is it normal?", "No", "closed"),
        EvalQuestion("d", "Organ?", "lung", "open"),
    ]
    preds = [
        {"question_id": "a", "text": "left"},
        {"question_id": "b", "text": "a CT scan"},
        {"question_id": "c", "text": "no"},
        {"question_id": "d", "text": "the lung"},
    ]
    quilt = score_vqa(qs, preds, n_resamples=0)
    med = score_vqa(qs, preds, n_resamples=0, closed_rule="answer_in_prediction")
    # Under the yes/no rule "left" and "ct" can never be right (both predictions count as "yes").
    assert quilt["closed_accuracy"] == pytest.approx(100 / 3, abs=1e-3) and med["closed_accuracy"] == 100.0
    assert quilt["closed_answers_not_yes_no"] == ["a", "b"] and med["closed_answers_not_yes_no"] == []
    assert med["closed_rule"] == "answer_in_prediction" and quilt["open_recall"] == med["open_recall"]
    with pytest.raises(ValueError, match="closed rule"):
        score_vqa(qs, preds, closed_rule="substring")
