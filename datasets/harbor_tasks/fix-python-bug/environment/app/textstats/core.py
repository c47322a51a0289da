"""Core text statistics functions."""

import re
from collections import Counter

_WORD_RE = re.compile(r"[A-Za-z0-9']+")
_SENTENCE_END_RE = re.compile(r"[.!?]+")


def tokenize(text):
    """Split ``text`` into words.

    A word is a run of letters, digits and apostrophes. Apostrophes at the
    start or end of a word are removed (``'hello'`` -> ``hello``), words are
    returned in lower case, and empty results are dropped.
    """
    words = []
    for raw in _WORD_RE.findall(text):
        word = raw.strip("'")
        if word:
            words.append(word)
    return words


def word_count(text):
    """Return the number of words in ``text``."""
    return len(tokenize(text))


def top_words(text, n=3):
    """Return the ``n`` most frequent words as ``(word, count)`` tuples.

    Sorted by count (highest first); words with the same count are sorted
    alphabetically. If there are fewer than ``n`` distinct words, all of them
    are returned. ``n`` <= 0 returns an empty list.
    """
    counts = Counter(tokenize(text))
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    return ranked[:n]


def average_word_length(text):
    """Return the mean word length rounded to 2 decimals (0.0 if no words)."""
    words = tokenize(text)
    return round(sum(len(w) for w in words) / len(words), 2)


def sentence_count(text):
    """Return the number of sentences.

    A sentence is a piece of text that contains at least one word and is
    terminated by one or more of ``.``, ``!`` or ``?`` -- or by the end of
    the text.
    """
    pieces = _SENTENCE_END_RE.split(text)
    return sum(1 for piece in pieces if tokenize(piece))
