"""Deduplication: drop exact and near-duplicate instructions and trajectories, within a split or across splits.

Records are compared on word tokens (``agentinstruct.filters.textnorm``), per key:

- ``instruction``: the task text;
- ``trajectory``: the conversation from the agent's first trained turn on (the
  prompt and one-shot example before it are the same in every record of a split).

Records of one episode are never each other's duplicates: a query split's
episode (mind2web) gives one record per question, all of one task, each a
distinct example. The first record of a group is kept; a later one is dropped with the reason
``duplicate: instruction of os_12`` (same words) or ``near-duplicate:
trajectory of os_12 (jaccard 0.91)`` (Jaccard similarity of word
``shingle``-grams at or above ``threshold``). Near duplicates are found with
MinHash LSH (candidates) and confirmed with the exact Jaccard of the shingle
sets, so the reported similarity is the true one. ``scope`` ``split`` compares
records of the same split only, ``global`` across all splits.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentinstruct.filters.base import Decision
from agentinstruct.filters.dirfilter import BatchFilter
from agentinstruct.filters.textnorm import window_hashes, words

KEYS = ("instruction", "trajectory")
SCOPES = ("global", "split")
NUM_PERM = 128


def key_text(record: dict[str, Any], key: str) -> str:
    """The text a record is compared on for ``key``.

    Example:
        >>> key_text({"instruction": "Count files", "conversations": []}, "instruction")
        'Count files'
    """
    if key == "instruction":
        return record["instruction"]
    if key == "trajectory":
        turns = record["conversations"]
        first = next((i for i, t in enumerate(turns) if t["from"] == "gpt" and t["loss"] is True), len(turns))
        return "\n".join(t["value"] for t in turns[first:])
    raise ValueError(f"unknown dedup key {key!r}; expected one of {', '.join(KEYS)}")


def band_rows(threshold: float, num_perm: int = NUM_PERM) -> int:
    """Rows per LSH band: the largest that still makes a pair at ``threshold`` a candidate with 99% probability.

    Example:
        >>> band_rows(0.8), band_rows(0.9), band_rows(0.5)
        (4, 8, 2)
    """
    best = 1
    for rows in (1, 2, 4, 8, 16, 32):
        if num_perm % rows == 0 and 1 - (1 - threshold**rows) ** (num_perm // rows) >= 0.99:
            best = rows
    return best


@dataclass
class _Seen:
    id: str
    shingles: dict[str, np.ndarray]
    episode: tuple[str, str, str] | None = None


def _episode(record: dict[str, Any]) -> tuple[str, str, str] | None:
    """The episode a record came from (split, build, episode key); None for a record that does not say."""
    build = record.get("build")
    return (record["split"], build["name"], build["episode"]) if build else None


class Deduplicator(BatchFilter):
    """Keep the first of each group of (near-)duplicate records; drop the others naming the one they repeat.

    Stateful: records are compared with the ones kept before them, so use a new
    instance for each pass over the data.

    Example:
        >>> d = Deduplicator(keys=["instruction"])
        >>> d({"id": "os_0", "split": "os", "instruction": "Count the files in /tmp."})
        (True, None)
        >>> d({"id": "os_1", "split": "os", "instruction": "count the files in /tmp"})
        (False, 'duplicate: instruction of os_0')
        >>> step = {"split": "mind2web", "instruction": "Book a table", "build": {"name": "main", "episode": "s1#0"}}
        >>> d({"id": "mind2web_0", **step}), d({"id": "mind2web_1", **step})  # two questions of one episode
        ((True, None), (True, None))
    """

    def __init__(self, keys: Sequence[str] = KEYS, scope: str = "global", threshold: float | None = 0.8,
                 shingle: int = 3, num_perm: int = NUM_PERM, seed: int = 1):
        super().__init__()
        for key in keys:
            if key not in KEYS:
                raise ValueError(f"unknown dedup key {key!r}; expected one of {', '.join(KEYS)}")
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
        if threshold is not None and not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise ValueError("shingle must be at least 1 word")
        self.keys, self.scope, self.threshold, self.shingle = tuple(keys), scope, threshold, shingle
        rng = np.random.default_rng(seed)
        self._mul = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
        self._add = rng.integers(0, 2**63, num_perm, dtype=np.uint64)
        self._rows = band_rows(threshold, num_perm) if threshold is not None else num_perm
        self._exact: dict[tuple[str, str, str], tuple[str, tuple[str, str, str] | None]] = {}
        self._buckets: dict[tuple[str, str, int, bytes], list[int]] = {}
        self._seen: list[_Seen] = []
        self.duplicates: list[dict[str, str]] = []

    @property
    def bar(self) -> str:
        near = f", jaccard<{self.threshold} of word {self.shingle}-grams" if self.threshold is not None else ""
        return f"no duplicate {'/'.join(self.keys)} ({self.scope}{near})"

    def settings(self) -> dict[str, Any]:
        how = (f"exact after lowercasing and dropping punctuation; near: Jaccard >= {self.threshold} of word "
               f"{self.shingle}-gram sets (MinHash LSH candidates, exact Jaccard confirmed)") if self.threshold is not None \
            else "exact after lowercasing and dropping punctuation"
        return {"method": f"{how}; keys {', '.join(self.keys)}; scope {self.scope}", "keys": list(self.keys),
                "scope": self.scope, "threshold": self.threshold, "shingle": self.shingle}

    def found(self) -> list[dict[str, str]]:
        return self.duplicates

    def _shingles(self, tokens: list[str]) -> np.ndarray:
        ids = np.fromiter((zlib.crc32(t.encode()) for t in tokens), dtype=np.uint64, count=len(tokens))
        return np.unique(window_hashes(ids, min(self.shingle, len(ids))))

    def _signature(self, shingles: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = shingles[None, :] * self._mul[:, None] + self._add[:, None]
            mixed ^= mixed >> np.uint64(31)
        return mixed.min(axis=1)

    def _check(self, record: dict[str, Any]) -> tuple[dict[str, str] | None, list[tuple]]:
        """What the record duplicates (key, of, how) or None, and for a kept record the index entries to add."""
        scope = record["split"] if self.scope == "split" else ""
        episode = _episode(record)
        entries: list[tuple] = []
        for key in self.keys:
            tokens = words(key_text(record, key))
            if not tokens:
                continue
            digest = hashlib.sha1(" ".join(tokens).encode()).hexdigest()
            first = self._exact.get((scope, key, digest))
            if first is not None and (episode is None or first[1] != episode):
                return {"key": key, "of": first[0], "how": "exact"}, []
            if first is None:
                entries.append(("exact", (scope, key, digest)))
            if self.threshold is None:
                continue
            shingles = self._shingles(tokens)
            signature = self._signature(shingles)
            bands = [(scope, key, b, signature[b * self._rows:(b + 1) * self._rows].tobytes())
                     for b in range(len(signature) // self._rows)]
            best, match = 0.0, None
            for candidate in sorted({i for band in bands for i in self._buckets.get(band, ())}):
                if episode is not None and self._seen[candidate].episode == episode:
                    continue
                other = self._seen[candidate].shingles[key]
                common = len(np.intersect1d(shingles, other, assume_unique=True))
                jaccard = common / (len(shingles) + len(other) - common)
                if jaccard > best:
                    best, match = jaccard, self._seen[candidate].id
            if match is not None and best >= self.threshold:
                return {"key": key, "of": match, "how": f"jaccard {best:.2f}"}, []
            entries.append(("near", key, shingles, bands))
        return None, entries

    def filter(self, record: dict[str, Any]) -> Decision:
        duplicate, entries = self._check(record)
        if duplicate is not None:
            self.duplicates.append({"id": record["id"], **duplicate})
            if duplicate["how"] == "exact":
                return False, f"duplicate: {duplicate['key']} of {duplicate['of']}"
            return False, f"near-duplicate: {duplicate['key']} of {duplicate['of']} ({duplicate['how']})"
        index = len(self._seen)
        seen = _Seen(record["id"], {}, _episode(record))
        for entry in entries:
            if entry[0] == "exact":
                self._exact[entry[1]] = (record["id"], seen.episode)
            else:
                _, key, shingles, bands = entry
                seen.shingles[key] = shingles
                for band in bands:
                    self._buckets.setdefault(band, []).append(index)
        self._seen.append(seen)
        return True
