"""Answer normalisation against the rules as SPEC.md section D states them.

``spec_normalize`` below is written from the SPEC's sentences alone (character loops,
no regular expressions, no import from quilt_llava), so a misreading in
``metrics.normalize_answer`` shows up as a disagreement instead of being copied into
the expected values. Hand-worked examples pin each rule; a hypothesis test compares
the two on generated texts built from the characters the rules are about.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quilt_llava.eval.metrics import PUNCTUATION, closed_label, normalize_answer

# --- the rules, transcribed from SPEC.md -------------------------------------------

# "for each of the 21 characters ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? !, in that order"
SPEC_CHARACTERS = [
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
# "none and zero -> 0, one -> 1, two -> 2, ..., ten -> 10"
SPEC_NUMBERS = {"none": "0", "zero": "0"}
SPEC_NUMBERS.update(
    {
        w: str(i)
        for i, w in enumerate(["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"], start=1)
    }
)
SPEC_ARTICLES = ("a", "an", "the")
# A few entries of the standard VQA contraction map (apostrophe-less form -> expansion),
# including one whose key has a capital letter and so can never match lowercased text.
SPEC_CONTRACTIONS = {"dont": "don't", "isnt": "isn't", "cant": "can't", "thats": "that's", "Im": "I'm"}
PERIOD_LIMIT = 32


def _has_digit_comma_digit(text: str) -> bool:
    return any(text[i] == "," and text[i - 1].isdecimal() and text[i + 1].isdecimal() for i in range(1, len(text) - 1))


def spec_normalize(text: str) -> str:
    original = text.lower()
    out = original
    delete_all = _has_digit_comma_digit(original)
    for ch in SPEC_CHARACTERS:
        touches_space = (ch + " ") in original or (" " + ch) in original
        out = out.replace(ch, "" if (touches_space or delete_all) else " ")
    kept, removed = [], 0
    for i, ch in enumerate(out):
        followed_by_digit = i + 1 < len(out) and out[i + 1].isdecimal()
        if ch == "." and not followed_by_digit and removed < PERIOD_LIMIT:
            removed += 1
            continue
        kept.append(ch)
    words = "".join(kept).split()
    words = [SPEC_NUMBERS.get(w, w) for w in words]
    words = [w for w in words if w not in SPEC_ARTICLES]
    words = [SPEC_CONTRACTIONS.get(w, w) for w in words]
    return " ".join(words).replace(",", "")


def test_the_21_characters_in_the_spec_order():
    assert list(PUNCTUATION) == SPEC_CHARACTERS
    assert len(set(PUNCTUATION)) == 21


# --- every character, in both of its cases ------------------------------------------


@pytest.mark.parametrize("ch", SPEC_CHARACTERS)
def test_character_between_letters_becomes_a_space(ch):
    assert normalize_answer(f"ab{ch}cd") == "ab cd"
    assert normalize_answer(f"ab{ch}cd{ch}ef") == "ab cd ef"
    assert normalize_answer(f"{ch}ab{ch}") == "ab"


@pytest.mark.parametrize("ch", SPEC_CHARACTERS)
@pytest.mark.parametrize("where", ["after", "before"])
def test_character_touching_a_space_is_deleted_everywhere(ch, where):
    touching = f"gh{ch} ij" if where == "after" else f"gh {ch}ij"
    # One occurrence touches a space, so the one inside "ab?cd" goes too (no space there).
    assert normalize_answer(f"ab{ch}cd {touching}") == "abcd gh ij"


@pytest.mark.parametrize("ch", SPEC_CHARACTERS)
def test_digit_comma_digit_deletes_every_character(ch):
    assert normalize_answer(f"1,000 ab{ch}cd") == "1000 abcd"
    assert normalize_answer(f"ab{ch}cd 2,5") == "abcd 25"


@pytest.mark.parametrize("ch", SPEC_CHARACTERS)
def test_only_a_literal_space_counts(ch):
    # A tab or newline next to the character is not "a space": it becomes a space.
    assert normalize_answer(f"xy\t{ch}ab{ch}cd") == "xy ab cd"
    assert normalize_answer(f"xy{ch}\nab") == "xy ab"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000 cells", "1000 cells"),
        ("1, 000", "1 000"),  # comma-space: no digit-comma-digit; the comma touches a space
        ("a,b,c", "b c"),  # letters around commas: commas become spaces, then "a" is an article
        ("3,5-fold (x)", "35fold x"),  # digit-comma-digit deletes "-", "(" and ")" too
        ("pT1,N0", "pt1 n0"),  # "1,n" is not digit-comma-digit
        ("1,2/3", "123"),
        ("ratio 2.5, grade 3.", "ratio 2.5 grade 3"),
    ],
)
def test_digit_comma_digit_texts(text, expected):
    assert normalize_answer(text) == expected == spec_normalize(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("two nuclei", "2 nuclei"),
        ("None", "0"),
        ("zero mitoses", "0 mitoses"),
        ("one, two, three", "1 2 3"),
        ("The ten", "10"),
        ("Four-five", "4 5"),
        ("Six.", "6"),
        ("seven!", "7"),
        ("eleven ones tens", "eleven ones tens"),  # only the eleven words of the map
        ("nonE of the Eight", "0 of 8"),
        ("one-third", "1 third"),
    ],
)
def test_number_words(text, expected):
    assert normalize_answer(text) == expected == spec_normalize(text)


@pytest.mark.parametrize(
    ("prediction", "label"),
    [
        ("NO!", "no"),
        ("No.", "no"),
        ("no?", "no"),
        ("(No)", "no"),
        ("No-", "no"),
        ('"no"', "no"),
        ("No; benign", "no"),
        ("NOT!", "no"),
        ("Yes!", "yes"),
        ("Yes.", "yes"),
        ("No!!! Benign.", "no"),
        ("no/yes", "no"),
        ("No, 1,000 cells", "no"),
        ("Nope!", "yes"),
        ("Note: malignant", "yes"),
    ],
)
def test_closed_answers_with_punctuation(prediction, label):
    assert closed_label(prediction) == label
    words = spec_normalize(prediction).replace(",", "").split(" ")
    assert label == ("no" if ("no" in words or "not" in words) else "yes")


def test_period_limit_counts_across_the_text():
    text = "a.b." * 20  # 40 periods, none followed by a digit
    assert normalize_answer(text) == spec_normalize(text)
    assert normalize_answer(text).count(".") == 8
    text = "3.5 " + "x. " * 33 + "4.5"
    assert normalize_answer(text) == spec_normalize(text) == "3.5 " + "x " * 32 + "x. 4.5"


def test_contractions_and_articles():
    assert normalize_answer("I dont know, thats it") == "i don't know that's it"
    assert normalize_answer("Im an isnt") == "im isn't"


# --- generated texts -----------------------------------------------------------------

WORDS = [
    "a",
    "an",
    "the",
    "none",
    "zero",
    "one",
    "two",
    "ten",
    "eleven",
    "no",
    "not",
    "yes",
    "dont",
    "isnt",
    "im",
    "cell",
    "Tumor",
    "NO",
    "Two",
    "3",
    "1,000",
    "2.5",
    "x",
]
PIECES = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(SPEC_CHARACTERS),
    st.sampled_from([" ", " ", " ", ".", "..", "\t", ",", "'", ":", "&"]),
    st.sampled_from(list("0123456789")),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ", min_size=1, max_size=4),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, min_size=0, max_size=40).map("".join))
def test_normalisation_matches_the_spec_rules(text):
    assert normalize_answer(text) == spec_normalize(text)
    words = spec_normalize(text).replace(",", "").split(" ")
    assert closed_label(text) == ("no" if ("no" in words or "not" in words) else "yes")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["x.", "y", " ", ".5", "z."]), min_size=20, max_size=60).map("".join))
def test_period_limit_on_generated_texts(text):
    assert normalize_answer(text) == spec_normalize(text)
