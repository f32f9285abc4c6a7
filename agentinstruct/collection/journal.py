"""The build journal: an append-only JSONL file per split that makes a build resumable after any crash.

``DIR/.journal/{name}.jsonl`` (hidden, so ``load_dataset`` and the dataset
dir's file scan never see it) holds one header line with the build's
parameters, then one line per episode outcome::

    {"kind": "header", "journal": 1, "params": {"split": "os", "tasks_sha256": "...", ...}, "config": {...}}
    {"kind": "finished", "id": "os_3", "record": {...}}
    {"kind": "errored", "id": "os_7", "error": "model 'm' at ... failed 7 times in a row; last: HTTP 503"}
    {"kind": "skipped", "id": "os_4", "reason": "os task dev-00004 has no example solution, so no command ..."}

Each line is written with one ``write`` and fsync'd before the episode
counts as done, so a ``kill -9`` loses at most the episodes in flight. A
torn last line (the process died mid-write) is cut off on reopen; a line
is never written twice for a finished episode, because a resumed build
skips every finished id. Errored episodes are run again on resume; skipped
ones (the task has no reference solution, ``NoReferenceSolution``) are not,
since the same task would be skipped again. An exclusive lock keeps two
builds from appending to one journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

JOURNAL_DIR = ".journal"
FORMAT = 1


class JournalMismatch(ValueError):
    """The journal was started with other build parameters; resuming would mix two builds."""


def journal_path(out: Path, name: str) -> Path:
    """Where the journal ``name`` (a split, or ``eval-{split}``) of dataset dir ``out`` lives.

    Example:
        >>> journal_path(Path("out"), "os").as_posix()
        'out/.journal/os.jsonl'
    """
    return Path(out) / JOURNAL_DIR / f"{name}.jsonl"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """An open journal: what earlier runs finished or errored, and methods to append outcomes.

    Example:
        >>> with Journal.open(Path("out"), "os", {"split": "os", "seed": 1}) as journal:
        ...     journal.finish("os_0", {"id": "os_0", "reward": 1.0})
        ...     journal.error("os_1", "model 'm' failed 7 times in a row")
        ...     journal.skip("os_2", "os task t2 has no reference solution")
        >>> with Journal.open(Path("out"), "os", {"split": "os", "seed": 1}) as journal:  # a resumed build
        ...     list(journal.finished), journal.errored, journal.skipped
        (['os_0'], {'os_1': "model 'm' failed 7 times in a row"}, {'os_2': 'os task t2 has no reference solution'})
        >>> Journal.open(Path("out"), "os", {"split": "os", "seed": 2})
        Traceback (most recent call last):
        ...
        agentinstruct.collection.journal.JournalMismatch: out/.journal/os.jsonl belongs to a build with other parameters (seed: 1 then, 2 now). ...
    """

    def __init__(self, path: Path, fd: int, finished: dict[str, dict[str, Any]], errored: dict[str, str],
                 skipped: dict[str, str]):
        self.path = path
        self._fd = fd
        self._write_lock = threading.Lock()
        self.finished = finished
        """Records of finished episodes by id, in journal order."""
        self.errored = errored
        """Last error of each episode that errored and has not finished since."""
        self.skipped = skipped
        """Why each skipped episode was skipped (its task has no reference solution), by id."""

    @classmethod
    def open(cls, out: Path, name: str, params: dict[str, Any], config: dict[str, Any] | None = None) -> "Journal":
        """Open (or start) the journal ``name`` under ``out``; refuse if it was started with other ``params``.

        ``config`` (the build's resolved settings) is recorded in a new journal's header for the record; only
        ``params`` decide whether a resume is the same build.
        """
        path = journal_path(out, name)
        params = json.loads(json.dumps(params))  # compare as the header will read back (tuples become lists)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"{path}: another build is writing this journal; wait for it or use another --out") from None
        try:
            entries = _read(path, fd)
            if not entries:
                os.ftruncate(fd, 0)
                header = {"kind": "header", "journal": FORMAT, "params": params}
                if config is not None:
                    header["config"] = json.loads(json.dumps(config))
                _write(fd, _line(header))
                os.fsync(fd)
                _fsync_dir(path.parent)
                return cls(path, fd, {}, {}, {})
            _check_header(path, entries[0], params)
            finished: dict[str, dict[str, Any]] = {}
            errored: dict[str, str] = {}
            skipped: dict[str, str] = {}
            for n, entry in enumerate(entries[1:], start=2):
                kind, eid = entry.get("kind"), entry.get("id")
                if kind == "finished" and isinstance(entry.get("record"), dict):
                    finished.setdefault(eid, entry["record"])
                    errored.pop(eid, None)
                elif kind == "errored":
                    if eid not in finished:
                        errored[eid] = str(entry.get("error"))
                elif kind == "skipped":
                    skipped[eid] = str(entry.get("reason"))
                    errored.pop(eid, None)
                else:
                    raise ValueError(f"{path}:{n}: not a journal entry (kind {kind!r})")
            return cls(path, fd, finished, errored, skipped)
        except BaseException:
            os.close(fd)
            raise

    def finish(self, episode_id: str, record: dict[str, Any]) -> None:
        """Journal a finished episode's record (durable when this returns). Safe to call from worker threads."""
        self._append({"kind": "finished", "id": episode_id, "record": record})
        self.finished[episode_id] = record
        self.errored.pop(episode_id, None)

    def error(self, episode_id: str, message: str) -> None:
        """Journal an errored episode; it runs again on resume. Safe to call from worker threads."""
        self._append({"kind": "errored", "id": episode_id, "error": message})
        self.errored[episode_id] = message

    def skip(self, episode_id: str, reason: str) -> None:
        """Journal a skipped episode (its task has no reference solution); it is not run again on resume. Safe to
        call from worker threads."""
        self._append({"kind": "skipped", "id": episode_id, "reason": reason})
        self.skipped[episode_id] = reason
        self.errored.pop(episode_id, None)

    def _append(self, entry: dict[str, Any]) -> None:
        data = _line(entry)
        with self._write_lock:  # one line at a time; the fsync that follows may cover several
            _write(self._fd, data)
        os.fsync(self._fd)

    def close(self) -> None:
        """Release the lock and the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read(path: Path, fd: int) -> list[dict[str, Any]]:
    """Parse every complete line; cut off a torn tail so the next append starts on a fresh line."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # bytes after the last newline: empty, or a line cut short by a crash
    entries: list[dict[str, Any]] = []
    good = 0  # bytes of the file that hold complete, parseable lines
    for n, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            if n == len(lines) and not tail:
                break  # the last line was written whole but garbled by the crash: drop it like a torn one
            raise ValueError(f"{path}:{n}: corrupt journal line ({exc}); move the journal away to start over") from None
        entries.append(entry)
        good += len(raw) + 1
    if good != len(data):
        os.ftruncate(fd, good)
        os.fsync(fd)
    return entries


def _check_header(path: Path, header: dict[str, Any], params: dict[str, Any]) -> None:
    if header.get("kind") != "header" or header.get("journal") != FORMAT:
        raise ValueError(f"{path}:1: not a journal header (format {FORMAT}); move the journal away to start over")
    diffs = _differences(header.get("params", {}), params)
    if diffs:
        raise JournalMismatch(
            f"{path} belongs to a build with other parameters ({'; '.join(diffs)}). "
            "Re-run with the original options to resume it, or use another --out "
            "(or delete the journal to start this split over)."
        )


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old then, new now`` for each differing key; nested settings (the builder's options) key by key."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}: {a!r} then, {b!r} now")
    return out
