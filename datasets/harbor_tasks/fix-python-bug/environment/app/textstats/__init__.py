"""textstats: tiny text statistics helpers."""

from .core import (
    average_word_length,
    sentence_count,
    tokenize,
    top_words,
    word_count,
)

__all__ = [
    "average_word_length",
    "sentence_count",
    "tokenize",
    "top_words",
    "word_count",
]
