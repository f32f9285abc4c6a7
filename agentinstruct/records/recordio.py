"""Reading records from JSON, JSONL, Parquet files and dataset dirs, keeping where each one came from.

Readers never raise on bad data: a line that is not JSON or a file that is not
Parquet becomes an ``Entry`` with ``error`` set, so ``validate`` can report it
beside every other problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORD_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class Entry:
    """One record (or one unreadable piece) and its place: ``file`` and ``where`` (``line 3``, ``row 7``)."""

    file: Path
    where: str
    record: Any = None
    error: str | None = None

    @property
    def label(self) -> str:
        """``file:where id=...``: how errors name a record."""
        rid = self.record.get("id") if isinstance(self.record, dict) else None
        return f"{self.file}:{self.where}" + (f" id={rid}" if isinstance(rid, str) else "")


def _read_jsonl(path: Path) -> Iterator[Entry]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield Entry(path, f"line {n}", json.loads(line))
            except json.JSONDecodeError as exc:
                yield Entry(path, f"line {n}", error=f"not valid JSON ({exc.msg} at column {exc.colno})")


def _read_json(path: Path) -> Iterator[Entry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        yield Entry(path, f"line {exc.lineno}", error=f"not valid JSON ({exc.msg} at column {exc.colno})")
        return
    rows = data if isinstance(data, list) else [data]
    for n, row in enumerate(rows):
        yield Entry(path, f"item {n}", row)


def _read_parquet(path: Path) -> Iterator[Entry]:
    # pyarrow is imported here: reading JSON and JSONL (validate on a small file) does without its import time.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        yield Entry(path, "file", error=f"not a readable Parquet file ({exc})")
        return
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for rec in batch.to_pylist():
                yield Entry(path, f"row {row}", rec)
                row += 1
    except (pa.ArrowException, OSError) as exc:
        yield Entry(path, f"row {row}", error=f"Parquet data unreadable from here on ({exc})")


def record_files(path: Path) -> list[Path]:
    """The record files a path stands for: itself, or a dataset dir's Parquet files in sorted order.

    Example:
        >>> record_files(Path("data.jsonl"))
        [PosixPath('data.jsonl')]
    """
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if not any(part.startswith(".") for part in p.relative_to(path).parts))
    return [path]


def read_entries(path: Path) -> Iterator[Entry]:
    """Every record in a JSON, JSONL or Parquet file, or in every Parquet file of a dataset dir.

    Example:
        >>> _ = Path("os.jsonl").write_text('{"id": "os_0"}\\n{"id": "os_1"}\\n')
        >>> [e.record["id"] for e in read_entries(Path("os.jsonl"))]
        ['os_0', 'os_1']
        >>> list(read_entries(Path("missing.jsonl")))
        [Entry(file=PosixPath('missing.jsonl'), where='file', record=None, error='no such file or directory')]
    """
    for file in record_files(path):
        if not file.exists():
            yield Entry(file, "file", error="no such file or directory")
        elif file.suffix == ".parquet":
            yield from _read_parquet(file)
        elif file.suffix == ".jsonl":
            yield from _read_jsonl(file)
        elif file.suffix == ".json":
            yield from _read_json(file)
        else:
            yield Entry(file, "file", error=f"unknown file type {file.suffix!r} (expected one of {', '.join(RECORD_SUFFIXES)})")
