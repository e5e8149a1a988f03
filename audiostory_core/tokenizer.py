"""AudioStory's tokenizer: the base Qwen2.5 tokenizer plus 612 added tokens; text → ids.

The added tokens are the keys of the official `tokenizer/added_tokens.json`, appended in file
order; the id values written in that file are stale and ignored by the official factories, so
the effective ids are consecutive from the base length (spec §1.3). `FULL_SIZE_IDS` lists them
for the real 151,665-token base and `check_full_size_ids` asserts them.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from .errors import CheckpointMismatch
from .prompts import (DEFAULT_LEAD, END_OF_TEXT, GEN_CLOSE, GEN_OPEN, IM_END, IM_START,  # noqa: F401 (re-exported)
                      THINK_CLOSE, THINK_OPEN, TS_CLOSE, TS_OPEN, StoryText, chat_prompt, instruction_text)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .config import SpecialTokenIds

BASE_VOCAB_LEN = 151_665          # tokens in the Qwen2.5 tokenizer (151,643 BPE + 22 specials)
FULL_VOCAB_LEN = 152_277          # after the 612 added tokens = the LLM's vocab_size
N_T5_VOCAB = 100                  # <t5_00000> … <t5_00099> exist in the vocabulary
N_AUD_VOCAB = 501                 # <aud_00000> … <aud_00500>

T5_OPEN, T5_CLOSE, AUD_OPEN, AUD_CLOSE = "<t5>", "</t5>", "<aud>", "</aud>"

# Ids in the real 152,277-token vocabulary (spec §1.3; 06 special_token_ids_RECONSTRUCTED.json).
FULL_SIZE_IDS = {
    END_OF_TEXT: 151643, IM_START: 151644, IM_END: 151645,
    T5_CLOSE: 151665, "<video_padding>": 151666, TS_OPEN: 151667, TS_CLOSE: 151668,
    T5_OPEN: 151669, "<t5_00000>": 151670, "<t5_00063>": 151733, "<t5_00099>": 151769,
    AUD_OPEN: 151770, AUD_CLOSE: 151771, "<aud_00000>": 151772, "<aud_00007>": 151779,
    "<aud_00500>": 152272, GEN_OPEN: 152273, GEN_CLOSE: 152274, THINK_OPEN: 152275,
    THINK_CLOSE: 152276,
}

_TIMESTAMP = re.compile(r"<timestamp>\s*([-+0-9.eE]+)\s*</timestamp>")


def t5_token(k: int) -> str:
    return f"<t5_{k:05d}>"


def aud_token(k: int) -> str:
    return f"<aud_{k:05d}>"


def added_tokens(n_t5_vocab: int = N_T5_VOCAB, n_aud_vocab: int = N_AUD_VOCAB) -> tuple[str, ...]:
    """The added tokens in the key order of the official added_tokens.json (612 at full size)."""
    return (
        (T5_CLOSE, "<video_padding>", TS_OPEN, TS_CLOSE, T5_OPEN)
        + tuple(t5_token(k) for k in range(n_t5_vocab))
        + (AUD_OPEN, AUD_CLOSE)
        + tuple(aud_token(k) for k in range(n_aud_vocab))
        + (GEN_OPEN, GEN_CLOSE, THINK_OPEN, THINK_CLOSE)
    )


def extend_tokenizer(
    tokenizer: "PreTrainedTokenizerBase",
    n_t5_vocab: int = N_T5_VOCAB,
    n_aud_vocab: int = N_AUD_VOCAB,
) -> "PreTrainedTokenizerBase":
    """Append AudioStory's added tokens to a base tokenizer (in place) and return it.

    A tokenizer that already holds them (e.g. saved with the checkpoint) is only checked.

    Raises:
        CheckpointMismatch: the tokens exist but not at consecutive ids after the base, or the
            base holds only some of them.
    """
    tokens = added_tokens(n_t5_vocab, n_aud_vocab)
    vocab = tokenizer.get_vocab()
    absent = [t for t in tokens if t not in vocab]
    if len(absent) == len(tokens):
        tokenizer.add_tokens(list(tokens), special_tokens=True)
    elif absent:
        raise CheckpointMismatch("tokenizer", missing=absent, noun="token")
    got = tokenizer.convert_tokens_to_ids(list(tokens))
    first = got[0]
    wrong = [(t, (i,), (first + k,)) for k, (t, i) in enumerate(zip(tokens, got)) if i != first + k]
    if wrong:
        raise CheckpointMismatch("tokenizer", mismatched=wrong, noun="token")
    return tokenizer


def check_full_size_ids(tokenizer: "PreTrainedTokenizerBase") -> None:
    """Assert the real tokenizer's length and the ids of spec §1.3.

    Raises:
        CheckpointMismatch: the length or any id differs.
    """
    got = dict(zip(FULL_SIZE_IDS, tokenizer.convert_tokens_to_ids(list(FULL_SIZE_IDS))))
    wrong = [(t, (got[t],), (want,)) for t, want in FULL_SIZE_IDS.items() if got[t] != want]
    if len(tokenizer) != FULL_VOCAB_LEN:
        wrong.append(("len(tokenizer)", (len(tokenizer),), (FULL_VOCAB_LEN,)))
    if wrong:
        raise CheckpointMismatch("tokenizer", mismatched=wrong, noun="token")


def special_ids(tokenizer: "PreTrainedTokenizerBase", n_t5_query: int, n_aud_query: int) -> "SpecialTokenIds":
    """Ids of every structural token decoding depends on (n_* = query tokens per clip).

    Raises:
        CheckpointMismatch: a structural token is missing from the tokenizer.
    """
    from .config import SpecialTokenIds

    vocab = tokenizer.get_vocab()
    needed = added_tokens(n_t5_query, n_aud_query) + (IM_END,)
    absent = [t for t in needed if t not in vocab]
    if absent:
        raise CheckpointMismatch("tokenizer", missing=absent, noun="token")
    return SpecialTokenIds.from_vocab(vocab, n_t5_query, n_aud_query)


def encode(tokenizer: "PreTrainedTokenizerBase", text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def story_ids(tokenizer: "PreTrainedTokenizerBase", ids: "SpecialTokenIds", story: StoryText) -> tuple[list[int], int]:
    """Token ids of a fixed clip plan (`prompts.compose_story`) and the prompt's length.

    Prompt, storyline and `<|/think|>`, then per clip `<|gen|>` caption `<timestamp>D</timestamp>`,
    both query chains and `<|/gen|>` (spec §1.4). The text parts are tokenized as the text the
    model was trained on; the chains are appended as ids (they are never text).
    """
    prompt = encode(tokenizer, story.prompt)
    out = prompt + encode(tokenizer, story.reasoning) + [ids.think_close]
    for text in story.clips:
        out += [ids.gen_open] + encode(tokenizer, text) + list(ids.t5_chain) + list(ids.aud_chain) + [ids.gen_close]
    return out, len(prompt)


def split_caption_duration(caption: str) -> tuple[str, float]:
    """`"dog barks <timestamp> 4.5 </timestamp>"` → `("dog barks", 4.5)` (first tag only, spec §1.7).

    Raises:
        ValueError: the caption carries no `<timestamp>` tag.
    """
    match = _TIMESTAMP.search(caption)
    if match is None:
        raise ValueError(f"caption without a <timestamp> duration: {caption!r}")
    content = (caption[: match.start()] + caption[match.end():]).strip()
    return " ".join(content.split()), float(match.group(1))


def decode(tokenizer: "PreTrainedTokenizerBase", token_ids: Sequence[int]) -> str:
    # The official runner never skips special tokens.
    return tokenizer.decode(list(token_ids), skip_special_tokens=False).strip()


def debug_tokenizer(n_t5_vocab: int = 10, n_aud_vocab: int = 6) -> "PreTrainedTokenizerBase":
    """A tiny tokenizer for tests and debug models: one token per byte (a byte-level BPE without
    merges, so any text round-trips exactly, as with Qwen's), Qwen's three chat specials, then
    AudioStory's added tokens in file order. Built locally; nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core)
    tok.add_tokens([END_OF_TEXT, IM_START, IM_END], special_tokens=True)
    tok.eos_token, tok.pad_token = IM_END, END_OF_TEXT
    return extend_tokenizer(tok, n_t5_vocab, n_aud_vocab)
