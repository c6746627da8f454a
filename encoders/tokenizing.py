"""Tokenisation of a text batch, truncated to the model's window."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from encoders.errors import EncoderError

# Tokenizers saved without a length limit report transformers' VERY_LARGE_INTEGER
# (int(1e30)) as model_max_length, so anything above this means "no limit".
_NO_TOKENIZER_LIMIT = 1_000_000


def text_window(tokenizer: PreTrainedTokenizerBase, *limits: int | None) -> int:
    """Return the max tokens per text: the smallest of the tokenizer's limit and `limits`.

    `None` in `limits` means that source sets no limit.
    """
    candidates = [limit for limit in limits if limit is not None]
    tokenizer_limit = tokenizer.model_max_length
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit <= _NO_TOKENIZER_LIMIT:
        candidates.append(tokenizer_limit)
    if not candidates:
        raise EncoderError("no text window: neither the tokenizer nor the model sets a max length")
    return min(candidates)


@dataclass(frozen=True, slots=True)
class TokenCount:
    """The tokens of one text, special tokens included, and the window of the model that reads it."""

    tokens: int
    window: int

    @property
    def over_window(self) -> bool:
        """Whether `tokenize` would cut the text."""
        return self.tokens > self.window


def count_tokens(tokenizer: PreTrainedTokenizerBase, text: str, window: int) -> TokenCount:
    """Count the tokens `tokenize` would make of `text` before truncating it to `window`."""
    # verbose=False keeps transformers from warning that the text is longer than
    # the model's maximum, which is what the caller wants to find out.
    encoded = tokenizer(text, truncation=False, verbose=False, return_attention_mask=False)
    return TokenCount(len(encoded["input_ids"]), window)


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """A tokenizer and a token window that count the tokens of single texts, for one thread's own use."""

    tokenizer: PreTrainedTokenizerBase
    window: int

    def count(self, text: str) -> TokenCount:
        """Count the tokens `tokenize` would make of `text` before truncating it to the window."""
        return count_tokens(self.tokenizer, text, self.window)


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[object],
    max_length: int,
    names: Sequence[str],
) -> dict[str, torch.Tensor]:
    """Tokenise `texts` with right padding to the longest and return the tensors in `names`.

    Texts longer than `max_length` tokens are truncated, keeping their special tokens.
    """
    encoded = tokenizer(
        [str(text) for text in texts],
        padding=True,
        truncation=True,
        max_length=max_length,
        # Right padding keeps absolute position ids the same as for the text alone.
        padding_side="right",
        return_tensors="pt",
    )
    return {name: encoded[name] for name in names if name in encoded}
