"""Decontamination: drop records whose text shares a word n-gram with an evaluation instance.

The rule is the common one: lowercase word tokens (punctuation ignored,
``agentinstruct.filters.textnorm``), and a record is contaminated when any ``n``
consecutive words of its instruction also occur in an evaluation instance.
``n`` defaults to 13, the GPT-3 paper's and lm-eval-harness' choice; open-r1's
``scripts/decontaminate.py`` uses 8 (``--n 8`` reproduces it). An eval
instance shorter than ``n`` words is matched as a whole phrase when it has at
least ``min_words`` words (AgentBench KG questions are often shorter than 13
words); shorter ones are reported as not checkable.

Speed: every evaluation n-gram is hashed once; a record's words are mapped to
the evaluation vocabulary by Arrow (a window holding a word no eval instance
has cannot match), windows of every needed length are hashed with NumPy in
``n`` vectorised passes, looked up by binary search, and hits are verified word
by word, so a 64-bit hash collision can never drop a record. Batches run on a
thread pool (the kernels release the GIL). ``benchmarks/bench_decontam.py``
measures it against the plain-Python n-gram set approach on ShareGPT.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from agentinstruct.filters.base import Decision
from agentinstruct.filters.dirfilter import BatchFilter
from agentinstruct.filters.textnorm import HASH_BASE, token_lists, window_hashes
from agentinstruct.records.recordio import read_entries

DEFAULT_N = 13
DEFAULT_MIN_WORDS = 8
FIELDS = ("instruction", "conversation")
# Text fields of eval files, tried in this order when the user names none.
TEXT_FIELDS = ("instruction", "description", "question", "prompt", "problem", "query", "input", "task",
               "confirmed_task", "text")
ID_FIELDS = ("id", "qid", "task_id", "question_id", "annotation_id", "instance_id")
# The AgentBench dev task files: path under the AgentBench data folder -> text field.
AGENTBENCH_DEV = {
    "os_interaction/dev.json": "description",
    "dbbench/dev.jsonl": "description",
    "knowledgegraph/dev.json": "question",
}
BATCH = 2048


@dataclass(frozen=True)
class EvalSet:
    """Evaluation instances from one file: its name, the text field used, its sha256, ids and texts."""

    name: str
    field: str
    sha256: str
    ids: list[str]
    texts: list[str]


@dataclass(frozen=True)
class Match:
    """A contaminated text: the eval instance it overlaps and the shared words."""

    eval_id: str
    ngram: str

    def reason(self, field: str) -> str:
        """The drop reason for a record whose ``field`` holds this overlap.

        Example:
            >>> Match("dev#0", "a b c").reason("instruction")
            'contaminated: instruction shares 3 words with dev#0'
        """
        return f"contaminated: {field} shares {len(self.ngram.split())} words with {self.eval_id}"


def _row_text(row: Any, field: str | None) -> tuple[str | None, str]:
    if isinstance(row, str):
        return row, "text"
    if not isinstance(row, dict):
        return None, field or "?"
    if field is not None:
        value = row.get(field)
        return (value if isinstance(value, str) else None), field
    for name in TEXT_FIELDS:
        if isinstance(row.get(name), str):
            return row[name], name
    if isinstance(row.get("conversations"), list):
        turns = [t.get("value", "") for t in row["conversations"] if isinstance(t, dict) and t.get("from") in ("human", "user")]
        return "\n".join(turns), "conversations"
    return None, "?"


def load_eval_set(path: Path, field: str | None = None, name: str | None = None) -> EvalSet:
    """Read eval instances from a JSON or JSONL file (or a THUDM-style dataset dir).

    The text is ``field``, else the first of ``TEXT_FIELDS`` a row has, else its
    human turns; the id is the row's ``id``/``qid``/... or its index. Rows
    without text are an error naming file and row.

    Example:
        >>> _ = Path("dev.jsonl").write_text('{"description": "How many files are in /etc?"}\\n'
        ...                                  '{"id": "q7", "description": "Which user owns /srv?"}\\n')
        >>> s = load_eval_set(Path("dev.jsonl"))
        >>> s.field, s.ids, s.texts[0]
        ('description', ['dev.jsonl#0', 'dev.jsonl#q7'], 'How many files are in /etc?')
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: eval file not found")
    name = name or path.as_posix()
    ids, texts, used = [], [], set()
    for n, entry in enumerate(read_entries(path)):
        if entry.error:
            raise ValueError(f"{entry.label}: {entry.error}")
        text, got = _row_text(entry.record, field)
        if text is None:
            wanted = f"field {field!r}" if field else f"any of {', '.join(TEXT_FIELDS)} or conversations"
            raise ValueError(f"{entry.label}: no text to check ({wanted}); name the field as {path}:FIELD")
        row_id = next((entry.record[k] for k in ID_FIELDS if isinstance(entry.record, dict) and k in entry.record), n)
        ids.append(f"{name}#{row_id}")
        texts.append(text)
        used.add(got)
    if not texts:
        raise ValueError(f"{path}: no eval instances")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted([path] if path.is_file() else path.rglob("*.parquet")))).hexdigest()
    return EvalSet(name, ",".join(sorted(used)), digest, ids, texts)


def agentbench_eval_sets(root: Path) -> list[EvalSet]:
    """The AgentBench dev task sets under ``root`` (os_interaction, dbbench, knowledgegraph) that exist.

    Example (an AgentBench data folder holding two of the three dev sets):
        >>> root = Path("agentbench")
        >>> for rel in ("dbbench", "knowledgegraph"):
        ...     (root / rel).mkdir(parents=True)
        >>> _ = (root / "dbbench/dev.jsonl").write_text('{"description": "How many users signed up in May?"}\\n')
        >>> _ = (root / "knowledgegraph/dev.json").write_text('[{"question": "who directed the film?"}]')
        >>> [(s.name, s.field) for s in agentbench_eval_sets(root)]
        [('agentbench/dbbench/dev.jsonl', 'description'), ('agentbench/knowledgegraph/dev.json', 'question')]
    """
    return [load_eval_set(Path(root) / rel, field, f"agentbench/{rel}")
            for rel, field in AGENTBENCH_DEV.items() if (Path(root) / rel).exists()]


def record_texts(record: dict[str, Any], fields: Sequence[str]) -> list[tuple[str, str]]:
    """The (field, text) pairs of a record to check: its ``instruction`` and/or its whole ``conversation``.

    Example:
        >>> record_texts({"instruction": "q", "conversations": []}, ["instruction"])
        [('instruction', 'q')]
    """
    out = []
    for field in fields:
        if field == "instruction":
            out.append((field, record["instruction"]))
        elif field == "conversation":
            out.append((field, "\n".join(t["value"] for t in record["conversations"])))
        else:
            raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
    return out


class Decontaminator(BatchFilter):
    """Keep records that share no ``n``-word sequence with any eval instance; drop the rest naming the instance.

    Example:
        >>> evals = [EvalSet("dev", "q", "0", ["dev#0"], ["list every file in the home directory that was modified in the last week"])]
        >>> d = Decontaminator(evals, n=8)
        >>> d.filter({"instruction": "Please list every file in the home directory that was modified in the last week."})
        (False, 'contaminated: instruction shares 8 words with dev#0')
    """

    def __init__(self, eval_sets: Sequence[EvalSet], n: int = DEFAULT_N, min_words: int = DEFAULT_MIN_WORDS,
                 fields: Sequence[str] = ("instruction",), workers: int = 2):
        super().__init__()
        if n < 1 or min_words < 1:
            raise ValueError("n and min_words must be at least 1")
        if not eval_sets:
            raise ValueError("no evaluation set to check against")
        self.eval_sets, self.n, self.min_words, self.fields, self.workers = list(eval_sets), n, min_words, tuple(fields), workers
        for field in self.fields:
            if field not in FIELDS:
                raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
        self.matches: list[dict[str, str]] = []
        self._index()

    @property
    def bar(self) -> str:
        return f"no {self.n}-gram shared with {len(self.eval_sets)} eval sets"

    @property
    def method(self) -> str:
        return (f"word {self.n}-grams (lowercase, punctuation ignored); eval instances shorter than {self.n} words "
                f"matched as a whole phrase when at least {self.min_words} words long")

    def _index(self) -> None:
        self.eval_ids = [i for s in self.eval_sets for i in s.ids]
        tokens = token_lists([t for s in self.eval_sets for t in s.texts])
        vocab = pc.unique(tokens.flatten())
        self._vocab = pc.filter(vocab, pc.not_equal(vocab, ""))
        self._words = [np.asarray(row, dtype=object) for row in tokens.to_pylist()]
        ids = self._ids(tokens)
        self.too_short: list[str] = []
        keys: dict[int, list[np.ndarray]] = {}
        self._owners: dict[int, dict[int, list[tuple[int, int]]]] = {}
        self._eval_tokens: list[np.ndarray] = []
        offsets = np.asarray(tokens.offsets)
        for i in range(len(self.eval_ids)):
            own = ids[offsets[i]:offsets[i + 1]]
            self._eval_tokens.append(own)
            length = min(self.n, len(own))
            if length < min(self.n, self.min_words):
                self.too_short.append(self.eval_ids[i])
                continue
            hashes = window_hashes(own, length)
            keys.setdefault(length, []).append(hashes)
            owners = self._owners.setdefault(length, {})
            for start, h in enumerate(hashes.tolist()):
                owners.setdefault(h, []).append((i, start))
        self._keys = {length: np.unique(np.concatenate(parts)) for length, parts in keys.items()}
        self.lengths = sorted(self._keys)
        self.instances = len(self.eval_ids)

    def _ids(self, tokens: pa.ListArray) -> np.ndarray:
        # 0 = a word no eval instance contains; eval words are 1..V.
        index = pc.index_in(tokens.flatten(), value_set=self._vocab)
        return (pc.fill_null(index, -1).to_numpy().astype(np.int64) + 1).astype(np.uint64)

    def scan(self, texts: Sequence[str]) -> list[Match | None]:
        """The first eval overlap of each text, or None.

        Example:
            >>> Decontaminator([EvalSet("e", "t", "0", ["e#0"], ["a b c d"])], n=3).scan(["x a b c", "a c"])
            [Match(eval_id='e#0', ngram='a b c'), None]
        """
        batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
        if self.workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                parts = list(pool.map(self._scan_batch, batches))
        else:
            parts = [self._scan_batch(b) for b in batches]
        return [m for part in parts for m in part]

    def _scan_batch(self, texts: Sequence[str]) -> list[Match | None]:
        found: list[Match | None] = [None] * len(texts)
        if not self.lengths:
            return found
        tokens = token_lists(list(texts))
        ids = self._ids(tokens)
        offsets = np.asarray(tokens.offsets)
        owner = np.repeat(np.arange(len(texts)), np.diff(offsets))
        unknown = np.concatenate([[0], np.cumsum(ids == 0)])
        h = ids.copy()
        with np.errstate(over="ignore"):
            for length in range(1, self.lengths[-1] + 1):
                if length > 1:
                    h = h[:-1] * HASH_BASE + ids[length - 1:]
                if length not in self._keys or len(h) == 0:
                    continue
                count = len(h)
                ok = (unknown[length:length + count] == unknown[:count]) & (owner[:count] == owner[length - 1:length - 1 + count])
                windows = np.nonzero(ok)[0]
                keys = self._keys[length]
                pos = np.minimum(np.searchsorted(keys, h[windows]), len(keys) - 1)
                for w in windows[keys[pos] == h[windows]].tolist():
                    text = int(owner[w])
                    if found[text] is None:
                        found[text] = self._verify(ids[w:w + length], int(h[w]), length)
        return found

    def _verify(self, window: np.ndarray, key: int, length: int) -> Match | None:
        for i, start in self._owners[length][key]:
            if np.array_equal(self._eval_tokens[i][start:start + length], window):
                return Match(self.eval_ids[i], " ".join(self._words[i][start:start + length]))
        return None

    def decide_all(self, records: Sequence[dict[str, Any]]) -> list[tuple[bool, str | None]]:
        """Decide many records with one batched scan per field; matches are kept in ``self.matches``."""
        decisions: list[tuple[bool, str | None]] = [(True, None)] * len(records)
        for field in self.fields:
            todo = [i for i, d in enumerate(decisions) if d[0]]
            found = self.scan([dict(record_texts(records[i], [field]))[field] for i in todo])
            for i, match in zip(todo, found):
                if match is not None:
                    decisions[i] = (False, match.reason(field))
                    self.matches.append({"id": records[i].get("id", str(i)), "field": field, "eval_id": match.eval_id, "ngram": match.ngram})
        for keep, reason in decisions:
            self.stats.count(keep, reason)
        return decisions

    def filter(self, record: dict[str, Any]) -> Decision:
        for field, text in record_texts(record, self.fields):
            match = self.scan([text])[0]
            if match is not None:
                return False, match.reason(field)
        return True

    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n": self.n,
            "min_words": self.min_words,
            "fields": list(self.fields),
            "eval_sets": [{"name": s.name, "field": s.field, "instances": len(s.ids), "sha256": s.sha256} for s in self.eval_sets],
            "too_short": self.too_short,
        }

    def found(self) -> list[dict[str, Any]]:
        return self.matches


