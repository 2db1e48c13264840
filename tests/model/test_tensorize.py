"""Conversations to input_ids/labels: the loss sees exactly the assistant turns."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quilt_llava.model.conversation import get_template
from quilt_llava.model.prompt import tokenize_prompt
from quilt_llava.model.tensorize import IGNORE_INDEX, MaskingError, tensorize_all, tensorize_record
from quilt_llava.model.tokenizer import train_tiny_tokenizer

TOK = train_tiny_tokenizer()
IMG = TOK.convert_tokens_to_ids("<image>")
N_IMG = 16

words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from(["\n", " "]),
    min_size=1,
    max_size=25,
).filter(lambda s: "<image>" not in s and "</s>" not in s)


def trained_spans(labels):
    """Runs of consecutive non-masked label ids."""
    spans, cur = [], []
    for label in labels:
        if label == IGNORE_INDEX:
            if cur:
                spans.append(cur)
                cur = []
        else:
            cur.append(label)
    if cur:
        spans.append(cur)
    return spans


def record(turns, image=True):
    conv = [{"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(turns)]
    return {"id": "r1", "image": "a.png" if image else None, "conversations": conv}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.lists(words, min_size=1, max_size=3).map(lambda qs: [x for q in qs for x in (q, q[::-1] + "!")]),
    image=st.booleans(),
    name=st.sampled_from(["vicuna_v1", "plain"]),
)
def test_unmasked_labels_decode_to_assistant_turns(turns, image, name):
    template = get_template(name)
    sample = tensorize_record(record(turns, image), TOK, template, N_IMG, IMG, max_length=10_000)
    assert sample.ok, sample.problem
    assert len(sample.input_ids) == len(sample.labels)
    expected = [s.text for s in template.segments(record(turns, image)["conversations"]) if s.trainable]
    if image and name == "vicuna_v1":
        expected = [
            s.text
            for s in template.segments(
                [{"from": "human", "value": "<image>\n" + turns[0]}, *record(turns)["conversations"][1:]]
            )
            if s.trainable
        ]
    got = [TOK.decode(span) for span in trained_spans(sample.labels)]
    assert "".join(got) == "".join(expected)
    if name == "vicuna_v1":  # ``plain`` drops user text, so its answers can be adjacent and merge
        assert got == expected
    # Every label that is trained equals the input id at that position.
    for i, label in enumerate(sample.labels):
        assert label == IGNORE_INDEX or label == sample.input_ids[i]
    assert sample.input_ids.count(IMG) == (N_IMG if image else 0)


def test_golden_vicuna_labels():
    rec = {
        "id": "g",
        "image": "x.png",
        "conversations": [{"from": "human", "value": "Is the blob red?"}, {"from": "gpt", "value": "Yes."}],
    }
    s = tensorize_record(rec, TOK, get_template("vicuna_v1"), 2, IMG, 512)
    labelled = TOK.decode([label for label in s.labels if label != IGNORE_INDEX])
    assert labelled == " Yes.</s>"
    assert TOK.decode(s.input_ids) == (
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: <image><image>\nIs the blob red? ASSISTANT: "
        "Yes.</s>"
    )
    assert s.labels[-1] == TOK.eos_token_id


def test_truncation_keeps_image_tokens():
    long_answer = "word " * 400
    rec = record(["<image>\nDescribe.", long_answer])
    s = tensorize_record(rec, TOK, get_template("vicuna_v1"), N_IMG, IMG, max_length=120)
    assert s.ok and s.truncated and len(s.input_ids) == 120
    assert s.input_ids.count(IMG) == N_IMG
    too_short = tensorize_record(rec, TOK, get_template("vicuna_v1"), N_IMG, IMG, max_length=30)
    assert not too_short.ok and "image tokens" in too_short.problem


def test_mismatches_are_reported_and_most_mismatched_stops():
    good = record(["Hi", "Hello."], image=False)
    bad = {"id": "bad-1", "conversations": [{"from": "gpt", "value": "x"}]}
    image_in_text_only = {
        "id": "bad-2",
        "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "y"}],
    }
    _, report = tensorize_all(
        [good, bad, good, good, image_in_text_only], TOK, get_template("vicuna_v1"), N_IMG, IMG, 512
    )
    assert report.mismatched_ids == ["bad-1", "bad-2"]
    assert report.summary()["mismatched"] == 2 and report.kept == 3
    with pytest.raises(MaskingError, match="3 of 4 records"):
        tensorize_all([good, bad, bad, bad], TOK, get_template("vicuna_v1"), N_IMG, IMG, 512)


def test_unrepresentable_text_is_a_mismatch():
    """A tokenizer that cannot round-trip the answer (here: unk tokens) must not be trained on silently."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": 3, "hi": 4}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>", "</s>"]})
    s = tensorize_record(record(["hi", "zebra"], image=False), tok, get_template("vicuna_v1"), 4, 3, 512)
    assert not s.ok and s.kind == "unaligned" and "does not line up" in s.problem


def test_one_image_per_record():
    many = record(["Describe.", "Two slides."]) | {"image": ["a.png", "b.png"]}
    s = tensorize_record(many, TOK, get_template("vicuna_v1"), N_IMG, IMG, 512)
    assert not s.ok and "2 images" in s.problem
    one = record(["Describe.", "One slide."]) | {"image": ["a.png"]}
    assert tensorize_record(one, TOK, get_template("vicuna_v1"), N_IMG, IMG, 512).input_ids.count(IMG) == N_IMG


# --------------------------------------------------------------------------- one path for training and inference
# (the release's token sequences and masks on the real LLaMA vocabulary: tests/model/test_fidelity.py)


def check_train_infer_consistency(tok, img, turns, image, name):
    template = get_template(name)
    rec = record(turns, image)
    sample = tensorize_record(rec, tok, template, N_IMG, img, max_length=10_000)
    assert sample.ok, sample.problem
    # (a) the unmasked labels decode to exactly the assistant turns (SentencePiece drops one leading space)
    expected = [
        s.text
        for s in template.segments(
            [
                {"from": "human", "value": ("<image>\n" + turns[0].strip() if image and name != "plain" else turns[0])},
                *rec["conversations"][1:],
            ]
        )
        if s.trainable
    ]
    got = [tok.decode(span) for span in trained_spans(sample.labels)]
    if name == "plain":  # ``plain`` answers are adjacent: one trained run
        expected = ["".join(expected)]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == e or (e.startswith(" ") and g == e[1:])
    for i, label in enumerate(sample.labels):
        assert label == IGNORE_INDEX or label == sample.input_ids[i]
    # (b) training starts with exactly the ids inference gives for the generation prompt (one code path)
    question = turns[0]
    prompt = template.prompt(question, with_image=image)
    prompt_ids = tokenize_prompt(tok, prompt, img, N_IMG)
    assert sample.input_ids[: len(prompt_ids)] == prompt_ids
    assert all(label == IGNORE_INDEX for label in sample.labels[: len(prompt_ids)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    turns=st.lists(words, min_size=1, max_size=2).map(lambda qs: [x for q in qs for x in (q, q + ".")]),
    image=st.booleans(),
)
def test_train_infer_consistency_byte_level(turns, image):
    check_train_infer_consistency(TOK, IMG, turns, image, "vicuna_v1")


def test_token_across_the_answer_edge_is_a_reported_mismatch():
    """A token that swallows prompt and answer text together cannot be masked: the record is reported by id."""
    from dataclasses import replace

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<image>": 3, "USER:": 4, "hi": 5, "ASSISTANT:yes": 6, "yes": 7}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>", "</s>"]})
    glued = replace(get_template("vicuna_v1"), system="", answer_lead="")
    rec = {"id": "edge-1", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yes"}]}
    _, report = tensorize_all([rec, rec | {"id": "edge-2"}], tok, glued, 4, 3, 512, max_mismatch_fraction=1.0)
    assert report.mismatched_ids == ["edge-1", "edge-2"]
    assert "does not line up" in report.problems["edge-1"]
    assert report.summary()["skipped"] == {"unaligned": 2}


def test_tokenizer_without_the_end_token_gets_the_segment_mask():
    """A byte-level BPE where '</s>' is plain text (Qwen-style): the release's round rule does not apply;
    the per-segment mask trains exactly the answers and their end text, on every turn."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from quilt_llava.model.tokenizer import corpus_lines

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        corpus_lines(),
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=["<|endoftext|>", "<image>"],
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    rec = record(["What is shown?", "Glands and stroma.", "More?", "No."])
    s = tensorize_record(rec, tok, get_template("vicuna_v1"), 4, tok.convert_tokens_to_ids("<image>"), 1000)
    assert s.ok, s.problem
    assert [tok.decode(span) for span in trained_spans(s.labels)] == [" Glands and stroma.</s>", " No.</s>"]
