"""Reading task files, for every split: one reader, one error type.

A task file is JSON (one task object, or a list of them) or JSON Lines (one
object per line), whatever its suffix: a ``.json`` file may hold JSON lines
and a ``.jsonl`` file one JSON list. Each entry knows the file, its 1-based line and its
0-based index, so a split's parser reports a bad field as
``dev.json:42: task 3: evaluation.match: expected ...`` with ``TaskFileError``,
whatever the split. An entry may carry ``instruction_source`` (files that
self-instruct writes mark their tasks so); it overrides the source the caller
gives and must be one of the task sources of the record contract.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "tasks.json"
    >>> _ = path.write_text('[\\n {"q": 1},\\n {"q": 2, "instruction_source": "self_instruct"}\\n]\\n')
    >>> [(e.line, e.index, e.source) for e in read_task_file(path, "package")]
    [(2, 0, 'package'), (3, 1, 'self_instruct')]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import TASK_SOURCES


class TaskFileError(ValueError):
    """A task file, or one field of one of its tasks, that a split cannot read.

    ``path``, ``line`` (1-based, None for the file as a whole), ``index`` (the task's 0-based position) and
    ``field`` (a dotted path such as ``evaluation.check[1].file``, None for the whole task) say where.
    """

    def __init__(self, path: Path | str, problem: str, *, line: int | None = None, index: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.line, self.index, self.field, self.problem = str(path), line, index, field, problem
        where = self.path + (f":{line}" if line is not None else "")
        if index is not None:
            where += f": task {index}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{problem}")


@dataclass(frozen=True)
class Entry:
    """One task of a task file: the raw object, where it stands, and its instruction source."""

    path: Path
    line: int | None
    index: int
    item: Any
    source: str

    def error(self, field: str | None, problem: str) -> TaskFileError:
        """A ``TaskFileError`` at this entry's file, line and index, for ``field``.

        Example:
            >>> str(Entry(Path("t.json"), 3, 1, {}, "package").error("description", "missing"))
            't.json:3: task 1: description: missing'
        """
        return TaskFileError(self.path, problem, line=self.line, index=self.index, field=field)


def candidate(item: Any, source: str, name: str = "candidate") -> Entry:
    """An entry that comes from no file (a task a model just wrote): errors name ``name`` instead of a file.

    Example:
        >>> str(candidate({}, "self_instruct").error("init", "bad"))
        'candidate: task 0: init: bad'
    """
    return Entry(Path(name), None, 0, item, source)


class _Lines:
    """1-based line numbers of offsets met in increasing order, counting each newline once (a BIRD train file has
    thousands of tasks; counting from the start for each would be quadratic)."""

    def __init__(self, text: str) -> None:
        self.text, self.offset, self.line = text, 0, 1

    def at(self, offset: int) -> int:
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line


_SPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace; a regex, as json itself skips it (indented files have much)


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


def _json_entries(text: str) -> list[tuple[int, Any]] | None:
    """(line, object) of each task of a JSON document, or None when the text is not one JSON document."""
    decoder, lines = json.JSONDecoder(), _Lines(text)
    pos = _skip_space(text, 0)
    if text.startswith("[", pos):
        out: list[tuple[int, Any]] = []
        pos = _skip_space(text, pos + 1)
        if text.startswith("]", pos):
            return out if _skip_space(text, pos + 1) == len(text) else None
        while True:
            try:
                item, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                return None
            out.append((lines.at(pos), item))
            pos = _skip_space(text, end)
            if text.startswith(",", pos):
                pos = _skip_space(text, pos + 1)
            elif text.startswith("]", pos):
                return out if _skip_space(text, pos + 1) == len(text) else None
            else:
                return None
    try:
        item, end = decoder.raw_decode(text, pos)
    except json.JSONDecodeError:
        return None
    return [(lines.at(pos), item)] if _skip_space(text, end) == len(text) else None


def _json_lines(path: Path, text: str) -> list[tuple[int, Any]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TaskFileError(path, f"not valid JSON ({exc})", line=n) from None
    return out


def read_task_file(path: Path | str, source: str) -> list[Entry]:
    """The tasks of a JSON or JSON Lines task file, in file order; ``source`` is their instruction source unless a
    task names its own. A missing file is ``FileNotFoundError``; bad JSON or a bad ``instruction_source`` is a
    ``TaskFileError`` with the line.

    Example:
        >>> _ = Path("dev.json").write_text('[\\n  {"description": "Count the files."},\\n  {"description": "Who owns /srv?"}\\n]\\n')
        >>> [(e.line, e.index, e.item["description"]) for e in read_task_file(Path("dev.json"), "train_split")]
        [(2, 0, 'Count the files.'), (3, 1, 'Who owns /srv?')]
        >>> _ = Path("bad.jsonl").write_text('{"description": "Count the files."}\\n{"description": \\n')
        >>> read_task_file(Path("bad.jsonl"), "train_split")
        Traceback (most recent call last):
        ...
        agentinstruct.builders.taskfile.TaskFileError: bad.jsonl:2: not valid JSON (Expecting value: ...)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(path, f"cannot read: {exc}") from None
    # A document first, whatever the suffix (the db split has always taken a JSON list in a .jsonl file); a JSON
    # Lines file stops being one document at its second line, so the attempt costs one task's decoding.
    raw = _json_entries(text)
    if raw is None:
        if text.lstrip().startswith("["):
            try:  # a broken JSON list: json's own message says where
                json.loads(text)
            except json.JSONDecodeError as exc:
                raise TaskFileError(path, f"not valid JSON ({exc})", line=exc.lineno) from None
        raw = _json_lines(path, text)  # JSON Lines, whatever the file is named
    entries = []
    for index, (line, item) in enumerate(raw):
        origin = item.get("instruction_source", source) if isinstance(item, dict) else source
        if origin not in TASK_SOURCES:
            raise TaskFileError(path, f"{origin!r} is not one of {', '.join(TASK_SOURCES)}", line=line, index=index,
                                field="instruction_source")
        entries.append(Entry(path, line, index, item, origin))
    return entries
