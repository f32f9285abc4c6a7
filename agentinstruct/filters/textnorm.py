"""Word tokens for overlap checks (dedup, decontamination): lowercase runs of letters, digits and underscores.

Punctuation and whitespace only separate words, so ``"ls -la /tmp"`` and
``"ls la tmp"`` have the same tokens, as in the GPT-3 / lm-eval-harness
decontamination. Batches are tokenized by Arrow kernels (RE2 regex, C++,
released GIL); ``words`` is the same rule in Python for one text.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Python's \w is the Unicode letters, numbers and underscore; RE2 spells the same class with properties.
_SEPARATOR_RE2 = r"[^\p{L}\p{N}_]+"
_WORD = re.compile(r"\w+")

# 64-bit polynomial rolling hash of token ids; any odd multiplier works, this one mixes bits well.
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)


def words(text: str) -> list[str]:
    """The word tokens of one text.

    Example:
        >>> words("Count the *.txt files in ~/Docs!")
        ['count', 'the', 'txt', 'files', 'in', 'docs']
    """
    return _WORD.findall(text.lower())


def token_lists(texts: list[str]) -> pa.ListArray:
    """The word tokens of many texts as an Arrow list array (one list per text), tokenized in C++.

    Example:
        >>> token_lists(["Hello, World!", " a-b"]).to_pylist()
        [['hello', 'world'], ['a', 'b']]
    """
    lowered = pc.utf8_lower(pa.array(texts, pa.large_string()))
    spaced = pc.utf8_trim_whitespace(pc.replace_substring_regex(lowered, pattern=_SEPARATOR_RE2, replacement=" "))
    # A text with no word splits into one empty token (callers treat "" as no word); all other tokens are non-empty.
    return pc.utf8_split_whitespace(spaced)


def window_hashes(ids: np.ndarray, length: int) -> np.ndarray:
    """Rolling hash of every window of ``length`` consecutive ids (``len(ids) - length + 1`` values).

    Example:
        >>> window_hashes(np.array([1, 2, 3], dtype=np.uint64), 2).shape
        (2,)
    """
    ids = ids.astype(np.uint64, copy=False)
    count = len(ids) - length + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    h = ids[:count].copy()
    with np.errstate(over="ignore"):
        for k in range(1, length):
            h *= HASH_BASE
            h += ids[k:k + count]
    return h
