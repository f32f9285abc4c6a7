"""The build journal: an append-only JSONL file per build that makes a build resumable after any crash.

``DIR/.journal/{split}/{build}.jsonl`` (hidden, so ``load_dataset`` and the
dataset dir's file scan never see it; ``build`` is ``main`` unless the build
is named, so one split can hold several builds) holds one header line with the
build's parameters, then one line per episode outcome, keyed by the episode's
stable key (``{task_id}#{attempt}``) with ``n``, its place in the build::

    {"kind": "header", "journal": 2, "params": {"split": "os", "tasks_sha256": "...", ...}, "config": {...}}
    {"kind": "finished", "id": "dev-003#0", "n": 3, "records": [{...}]}
    {"kind": "errored", "id": "dev-007#0", "error": "model 'm' at ... failed 7 times in a row; last: HTTP 503"}
    {"kind": "skipped", "id": "dev-004#0", "reason": "os task dev-00004 has no example solution, so no command ..."}

An episode gives one record, or one per question for a query split (mind2web).
Each line is written with one ``write`` and fsync'd before the episode
counts as done, so a ``kill -9`` loses at most the episodes in flight. A
torn last line (the process died mid-write) is cut off on reopen; a line
is never written twice for a finished episode, because a resumed build
skips every finished key. Errored episodes are run again on resume; skipped
ones (the task has no reference solution, ``NoReferenceSolution``) are not,
since the same task would be skipped again. An exclusive lock keeps two
builds from appending to one journal.

An open journal holds no records: for each finished episode it keeps where its
line lies and the few facts a run counts (``Finished``), and the records are
read back from the file, in episode order, when the split is written
(``journal_records``), so a build's memory does not grow with its size.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_DIR = ".journal"
FORMAT = 2
MAIN = "main"
"""The name of a split's build when it is not given one (``--name``)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished episode as an open journal keeps it: its place ``n`` in the build, where its line lies in the
    file, and each record's filter decision and success, for the progress bar and the run's counts."""

    n: int
    offset: int
    size: int
    kept: tuple[bool, ...]
    success: tuple[bool, ...]

    @classmethod
    def of(cls, n: int, offset: int, size: int, records: list[dict[str, Any]]) -> "Finished":
        """The entry for ``records``, journaled in ``size`` bytes at ``offset``.

        Example:
            >>> Finished.of(3, 120, 40, [{"filter": {"kept": True}, "success": True}, {"id": "bare"}])
            Finished(n=3, offset=120, size=40, kept=(True, False), success=(True, False))
        """
        return cls(n, offset, size, tuple(bool((r.get("filter") or {}).get("kept")) for r in records),
                   tuple(bool(r.get("success")) for r in records))


def read_episodes(path: Path, entries: Iterable[Finished]) -> Iterator[list[dict[str, Any]]]:
    """The records of each entry of the journal at ``path``, in the order given, read from the file one line at a
    time.

    Example:
        >>> with Journal.open(Path("eps"), "os", {"split": "os"}) as j:
        ...     j.finish("a#0", 0, [{"id": "os_0"}])
        >>> [[r["id"] for r in records] for records in read_episodes(j.path, j.finished.values())]
        [['os_0']]
    """
    with Path(path).open("rb") as f:
        for entry in entries:
            f.seek(entry.offset)
            yield json.loads(f.read(entry.size))["records"]


class JournalMismatch(ValueError):
    """The journal was started with other build parameters; resuming would mix two builds."""


def journal_path(out: Path, split: str, build: str = MAIN) -> Path:
    """Where the journal of build ``build`` of ``split`` (a split, or ``eval-{split}``) of dataset dir ``out`` lives.

    Example:
        >>> journal_path(Path("out"), "os").as_posix()
        'out/.journal/os/main.jsonl'
    """
    return Path(out) / JOURNAL_DIR / split / f"{build}.jsonl"


def build_names(out: Path, split: str) -> list[str]:
    """The builds whose journals ``split`` of dataset dir ``out`` holds, in the order they were first started
    (the order their records are written in).

    Example:
        >>> for name in ("main", "bird"):
        ...     Journal.open(Path("two"), "db", {"split": "db"}, build=name).close()
        >>> build_names(Path("two"), "db")
        ['main', 'bird']
    """
    folder = Path(out) / JOURNAL_DIR / split
    started = []
    for path in folder.glob("*.jsonl"):
        with path.open("rb") as f:
            try:
                started.append((json.loads(f.readline()).get("started", 0), path.stem))
            except ValueError:  # a torn header: a build that never ran an episode
                started.append((float("inf"), path.stem))
    return [name for _, name in sorted(started)]


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
        ...     journal.finish("t0#0", 0, [{"id": "os_0", "reward": 1.0}])
        ...     journal.error("t1#0", "model 'm' failed 7 times in a row")
        ...     journal.skip("t2#0", "os task t2 has no reference solution")
        >>> with Journal.open(Path("out"), "os", {"split": "os", "seed": 1}) as journal:  # a resumed build
        ...     list(journal.finished), journal.order, journal.errored, journal.skipped
        (['t0#0'], {'t0#0': 0}, {'t1#0': "model 'm' failed 7 times in a row"}, {'t2#0': 'os task t2 has no reference solution'})
        >>> Journal.open(Path("out"), "os", {"split": "os", "seed": 2})
        Traceback (most recent call last):
        ...
        agentinstruct.collection.journal.JournalMismatch: out/.journal/os/main.jsonl belongs to a build with other parameters (seed: 1 then, 2 now). ...
    """

    def __init__(self, path: Path, fd: int, size: int, finished: dict[str, Finished], errored: dict[str, str],
                 skipped: dict[str, str], header: dict[str, Any]):
        self.path = path
        self._fd = fd
        self._size = size  # bytes of complete lines: where the next line starts
        self._write_lock = threading.Lock()
        self.header = header
        """The header line: ``params``, ``config`` (the resolved build settings) and when the build ``started``."""
        self.finished = finished
        """Each finished episode by key, in journal order: where its records lie and what they count (the records
        themselves, one per episode or one per question, stay in the file: ``records``)."""
        self.errored = errored
        """Last error of each episode that errored and has not finished since."""
        self.skipped = skipped
        """Why each skipped episode was skipped (its task has no reference solution), by id."""

    @classmethod
    def open(cls, out: Path, split: str, params: dict[str, Any], config: dict[str, Any] | None = None,
             build: str = MAIN) -> "Journal":
        """Open (or start) the journal of build ``build`` of ``split`` under ``out``; refuse if it was started with
        other ``params``.

        ``config`` (the build's resolved settings) is recorded in a new journal's header for the record; only
        ``params`` decide whether a resume is the same build.
        """
        old = Path(out) / JOURNAL_DIR / f"{split}.jsonl"
        if old.exists():
            raise ValueError(f"{old}: a journal of an earlier agentinstruct (format 1, one build per split); finish "
                             "that build with the version that started it, or move the file away to start over")
        path = journal_path(out, split, build)
        params = json.loads(json.dumps(params))  # compare as the header will read back (tuples become lists)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"{path}: another build is writing this journal; wait for it or use another --out") from None
        try:
            lines = _read(path, fd)
            first = next(lines, None)
            if first is None:
                os.ftruncate(fd, 0)
                header = {"kind": "header", "journal": FORMAT, "params": params, "started": time.time_ns()}
                if config is not None:
                    header["config"] = json.loads(json.dumps(config))
                data = _line(header)
                _write(fd, data)
                os.fsync(fd)
                _fsync_dir(path.parent)
                return cls(path, fd, len(data), {}, {}, {}, header)
            header = first[3]
            _check_header(path, header, params)
            finished: dict[str, Finished] = {}
            errored: dict[str, str] = {}
            skipped: dict[str, str] = {}
            size = first[2]
            # One line at a time: only keys, places and counts stay, never the records.
            for n, offset, length, entry in lines:
                size = offset + length
                kind, eid = entry.get("kind"), entry.get("id")
                if kind == "finished" and isinstance(entry.get("records"), list):
                    if eid not in finished:
                        finished[eid] = Finished.of(int(entry.get("n", 0)), offset, length, entry["records"])
                    errored.pop(eid, None)
                elif kind == "errored":
                    if eid not in finished:
                        errored[eid] = str(entry.get("error"))
                elif kind == "skipped":
                    skipped[eid] = str(entry.get("reason"))
                    errored.pop(eid, None)
                else:
                    raise ValueError(f"{path}:{n}: not a journal entry (kind {kind!r})")
            return cls(path, fd, size, finished, errored, skipped, header)
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def header_of(out: Path, split: str, build: str = MAIN) -> dict[str, Any]:
        """The header of a journal (read only: another build may hold it open); empty for a torn one.

        Example:
            >>> Journal.open(Path("kgout"), "kg", {"split": "kg"}, config={"tasks": "embedded"}).close()
            >>> Journal.header_of(Path("kgout"), "kg")["config"]
            {'tasks': 'embedded'}
        """
        with journal_path(out, split, build).open("rb") as f:
            try:
                header = json.loads(f.readline())
            except ValueError:
                return {}
        return header if isinstance(header, dict) and header.get("kind") == "header" else {}

    @property
    def order(self) -> dict[str, int]:
        """Each finished episode's place ``n`` in its build: records are written in this order."""
        return {key: entry.n for key, entry in self.finished.items()}

    def records(self, key: str) -> list[dict[str, Any]]:
        """The records of finished episode ``key``, read back from the file.

        Example:
            >>> with Journal.open(Path("one"), "os", {"split": "os"}) as j:
            ...     j.finish("a#0", 0, [{"id": "os_0"}])
            ...     j.records("a#0")
            [{'id': 'os_0'}]
        """
        return next(read_episodes(self.path, [self.finished[key]]))

    def finish(self, key: str, n: int, records: list[dict[str, Any]]) -> None:
        """Journal a finished episode, the ``n``-th of its build, and its records (durable when this returns). Safe
        to call from worker threads."""
        self.finish_all([(key, n, records)])

    def finish_all(self, episodes: list[tuple[str, int, list[dict[str, Any]]]]) -> None:
        """Journal several finished episodes, each (key, n, records), with one write and one fsync (durable when
        this returns): the collector's group commit. Safe to call from worker threads.

        Example:
            >>> with Journal.open(Path("many"), "os", {"split": "os"}) as j:
            ...     j.finish_all([("a#0", 0, [{"id": "os_0"}]), ("b#0", 1, [{"id": "os_1"}])])
            ...     j.records("b#0")
            [{'id': 'os_1'}]
        """
        lines = [_line({"kind": "finished", "id": key, "n": n, "records": records}) for key, n, records in episodes]
        offset = self._append_lines(lines)
        for (key, n, records), data in zip(episodes, lines):
            self.finished[key] = Finished.of(n, offset, len(data), records)
            self.errored.pop(key, None)
            offset += len(data)

    def error(self, key: str, message: str) -> None:
        """Journal an errored episode; it runs again on resume. Safe to call from worker threads."""
        self._append({"kind": "errored", "id": key, "error": message})
        self.errored[key] = message

    def skip(self, key: str, reason: str) -> None:
        """Journal a skipped episode (its task has no reference solution); it is not run again on resume. Safe to
        call from worker threads."""
        self._append({"kind": "skipped", "id": key, "reason": reason})
        self.skipped[key] = reason
        self.errored.pop(key, None)

    def _append(self, entry: dict[str, Any]) -> None:
        self._append_lines([_line(entry)])

    def _append_lines(self, lines: list[bytes]) -> int:
        """Write whole lines with one write and fsync them; where the first one starts."""
        data = b"".join(lines)
        with self._write_lock:  # one write at a time; the fsync that follows may cover several
            offset = self._size
            _write(self._fd, data)
            self._size += len(data)
        os.fsync(self._fd)
        return offset

    def close(self) -> None:
        """Release the lock and the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def journal_records(out: Path, split: str, build: str = MAIN) -> Iterator[dict[str, Any]]:
    """The records of every finished episode of a journal, in episode order, streamed from the file (read without
    taking its lock: the build may be running); a torn last line is ignored, not cut.

    Example:
        >>> with Journal.open(Path("read"), "os", {"split": "os"}) as j:
        ...     j.finish("b#0", 1, [{"id": "os_1"}]); j.finish("a#0", 0, [{"id": "os_0"}])
        >>> [r["id"] for r in journal_records(Path("read"), "os")]
        ['os_0', 'os_1']
    """
    path = journal_path(out, split, build)
    entries = sorted(finished_entries(path).values(), key=lambda e: e.n)
    for records in read_episodes(path, entries):
        yield from records


def finished_entries(path: Path) -> dict[str, Finished]:
    """Each finished episode of the journal at ``path`` by key, read one line at a time without its lock; lines
    that do not parse (the torn tail of a build in flight) are passed over.

    Example:
        >>> with Journal.open(Path("scan"), "os", {"split": "os"}) as j:
        ...     j.finish("a#0", 0, [{"id": "os_0", "success": True}])
        >>> finished_entries(j.path)["a#0"].success
        (True,)
    """
    finished: dict[str, Finished] = {}
    with Path(path).open("rb") as f:
        f.readline()  # the header
        offset = f.tell()
        for raw in f:
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            if (isinstance(entry, dict) and entry.get("kind") == "finished" and isinstance(entry.get("records"), list)
                    and entry["id"] not in finished):
                finished[entry["id"]] = Finished.of(int(entry.get("n", 0)), offset, len(raw), entry["records"])
            offset += len(raw)
    return finished


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read(path: Path, fd: int) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """Each complete, parseable line as (line number, offset, length, entry), read one at a time; once read to the
    end, a torn tail is cut off so the next append starts on a fresh line."""
    good = 0  # bytes of the file that hold complete, parseable lines
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # bytes after the last newline: a line cut short by a crash
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                if not f.read(1):
                    break  # the last line was written whole but garbled by the crash: drop it like a torn one
                raise ValueError(f"{path}:{n}: corrupt journal line ({exc}); move the journal away to start over") from None
            yield n, good, len(raw), entry
            good += len(raw)
        size = f.seek(0, os.SEEK_END)
    if good != size:
        os.ftruncate(fd, good)
        os.fsync(fd)


def _check_header(path: Path, header: dict[str, Any], params: dict[str, Any]) -> None:
    if header.get("kind") != "header" or header.get("journal") != FORMAT:
        raise ValueError(f"{path}:1: not a journal header (format {FORMAT}); move the journal away to start over")
    diffs = _differences(header.get("params", {}), params)
    if diffs:
        raise JournalMismatch(
            f"{path} belongs to a build with other parameters ({'; '.join(diffs)}). "
            "Re-run with the original options to resume it, give this build its own --name to add it to the split "
            "beside that one, or use another --out (or delete the journal to start this build over)."
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
