"""A small byte-level BPE tokenizer trained locally, for the ``tiny`` preset.

Tests and the demo must build a model without downloading anything, so the tiny
preset's tokenizer is trained here with the ``tokenizers`` library on a bundled
text file (general English, pathology vocabulary and the words of the
conversation templates). Training is single-pass over ~11 kB of text and takes a
few milliseconds; the result depends only on the corpus and ``vocab_size``, so
two builds give identical vocabularies.

Special tokens follow the Llama convention the templates assume: ``<s>`` (BOS,
prepended by the post-processor), ``</s>`` (EOS, closes assistant turns),
``<unk>``, ``<pad>``, and the image placeholder ``<image>``.
"""

from __future__ import annotations

from importlib import resources

from quilt_llava.model.conversation import IMAGE_TOKEN

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD, IMAGE_TOKEN)


def corpus_lines() -> list[str]:
    text = resources.files("quilt_llava.model").joinpath("data/tokenizer_corpus.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def train_tiny_tokenizer(vocab_size: int = 1024, model_max_length: int = 1024, with_image_token: bool = True):
    """Train the bundled byte-level BPE and wrap it as a ``PreTrainedTokenizerFast``.

    ``with_image_token=False`` leaves ``<image>`` out (a plain LLM tokenizer, as in
    original-layout LLaVA checkpoints).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[t for t in SPECIAL_TOKENS if with_image_token or t != IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    # Like Llama: add_special_tokens=True prepends BOS only.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens={"image_token": IMAGE_TOKEN} if with_image_token else None,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
