"""Scoring the db split: answer normalisation, answer comparison and backend-independent table hashes.

Answers (``Final Answer: [...]``) are compared after these normalisation rules:

- The answer text is read as JSON, else as a Python literal, else as one bare string; a list or tuple gives its
  items, anything else is a one-item answer.
- ``None``, ``null`` and ``none`` (any case) are the same value; an empty answer ``[]`` equals ``["none"]``
  (AgentBench labels "no such row" as ``["none"]``, and a SQL query that finds nothing returns no rows).
- Booleans: ``true``/``True``/``TRUE`` are the same, likewise false.
- Numbers: ints, floats, Decimals and strings that read as a number compare by value, so ``1``, ``1.0`` and
  ``"1.0"`` are equal; floats are compared to 10 significant digits so that an AVG computed by two engines agrees.
  Thousands separators are not removed (``"21,000"`` is a string, as it is for AgentBench).
- Other strings: leading and trailing whitespace is dropped and inner runs of whitespace become one space; case
  is kept.
- One value on each side: compared as values (numbers by value). Otherwise the two answers are compared as
  multisets of normalised values (order does not matter, repeats do).

Tables after a modification task are compared by :func:`table_hash`, which hashes the normalised cells of each
row, sorts the rows, and so does not depend on row order or on which database engine stored them.
:func:`agentbench_md5` reproduces the hash AgentBench computed in MySQL (``answer_md5`` in its task files).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections import Counter
from decimal import Decimal
from typing import Any, Iterable, Sequence

_SPACES = re.compile(r"\s+")
_NONE = "none"
# AgentBench's MySQL kept group_concat_max_len at its default, so its table hashes saw at most 1024 characters
# of the concatenated row hashes; reproducing that keeps answer_md5 comparable for tables over 170 rows.
_MYSQL_GROUP_CONCAT_MAX_LEN = 1024


def parse_answer(text: str) -> list[Any]:
    """The items of a final answer as the agent wrote it (JSON, a Python literal, or a bare string).

    Example:
        >>> parse_answer('["a", 1]'), parse_answer("['x', None]"), parse_answer("7"), parse_answer("Giza")
        (['a', 1], ['x', None], [7], ['Giza'])
    """
    text = text.strip()
    for reader in (json.loads, ast.literal_eval):
        try:
            value = reader(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return list(value) if isinstance(value, (list, tuple)) else [value]
    return [text] if text else []


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)):
        return float(value)
    if isinstance(value, str):
        s = value.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return None
        # "nan"/"inf" spelled as words are answers, not numbers.
        return f if math.isfinite(f) else None
    return None


def normalize_value(value: Any) -> str:
    """The canonical string of one answer value (see the module docstring for the rules).

    Example:
        >>> [normalize_value(v) for v in (1, 1.0, "1.0 ", None, "NULL", True, "TRUE", "  a   b ", 22.950000000001)]
        ['1', '1', '1', 'none', 'none', 'true', 'true', 'a b', '22.95']
    """
    if value is None:
        return _NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    number = _number(value)
    if number is not None:
        if isinstance(number, int):
            return str(number)
        if number.is_integer() and abs(number) < 2**53:
            return str(int(number))
        return format(number, ".10g")
    text = _SPACES.sub(" ", str(value)).strip()
    lowered = text.lower()
    if lowered in ("none", "null"):
        return _NONE
    if lowered in ("true", "false"):
        return lowered
    return text


def normalize_answer(items: Iterable[Any]) -> list[str]:
    """Normalised values of an answer; an empty answer becomes ``["none"]``.

    Example:
        >>> normalize_answer([]), normalize_answer([" 2011.0", "x"])
        (['none'], ['2011', 'x'])
    """
    values = [normalize_value(v) for v in items]
    return values or [_NONE]


def answers_match(given: Sequence[Any], expected: Sequence[Any]) -> bool:
    """Whether an answer matches the expected one: as values when both have one item, else as multisets.

    Example:
        >>> answers_match([1], ["1.0"]), answers_match(["b", "a"], ["a", "b"]), answers_match(["a"], ["a", "a"])
        (True, True, False)
    """
    return Counter(normalize_answer(given)) == Counter(normalize_answer(expected))


def result_values(rows: Iterable[Sequence[Any]]) -> list[Any]:
    """The answer a result set gives: every cell of every row, row by row (what ``--policy reference`` answers).

    Example:
        >>> result_values([("a", 1), ("b", 2)])
        ['a', 1, 'b', 2]
    """
    return [cell for row in rows for cell in row]


def _cell(value: Any) -> str | None:
    """A stored cell as the table hash sees it: NULL stays None, everything else is its normalised text."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return normalize_value(value)


def table_hash(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """sha256 over the column names and the sorted rows of normalised cells: independent of row order and engine.

    Text cells are kept exactly (a changed space or letter case is a different table); numbers stored as numbers
    hash as their normalised text, so ``5`` in SQLite and ``5.0`` from MariaDB agree.

    Example:
        >>> table_hash(["a"], [("x",), ("y",)]) == table_hash(["a"], [("y",), ("x",)])
        True
        >>> table_hash(["a"], [(5,)]) == table_hash(["a"], [(5.0,)]) != table_hash(["a"], [(6,)])
        True
    """
    canon_rows = sorted(json.dumps([_cell(v) for v in row], ensure_ascii=False) for row in rows)
    payload = json.dumps({"columns": list(columns), "rows": canon_rows}, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def agentbench_md5(rows: Iterable[Sequence[Any]]) -> str:
    """The table hash AgentBench computed in MySQL for modification tasks, computed here from the rows.

    AgentBench ran ``md5(group_concat(rowhash order by rowhash))`` over
    ``substring(md5(concat_ws(',', cols...)), 1, 5)``; ``concat_ws`` skips NULLs and ``group_concat`` joins with
    commas and stops at 1024 characters.

    Example:
        >>> agentbench_md5([("a", "b")]) == __import__("hashlib").md5(
        ...     __import__("hashlib").md5(b"a,b").hexdigest()[:5].encode()).hexdigest()
        True
    """
    row_hashes = sorted(
        hashlib.md5(",".join(_cell(v) for v in row if v is not None).encode("utf-8")).hexdigest()[:5] for row in rows
    )
    joined = ",".join(row_hashes)[:_MYSQL_GROUP_CONCAT_MAX_LEN]
    return hashlib.md5(joined.encode("utf-8")).hexdigest()


def md5_from_answer_field(answer_md5: str) -> str | None:
    """The hex digest inside AgentBench's ``answer_md5`` field (stored as the str of a MySQL result set).

    Example:
        >>> md5_from_answer_field("[('09aa8fbf72f39362970f95a1276b957c',)]")
        '09aa8fbf72f39362970f95a1276b957c'
    """
    found = re.search(r"\b[0-9a-f]{32}\b", answer_md5)
    return found.group(0) if found else None
