"""Validating records and files: every problem named by file, record and field, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.records.recordio import Entry, read_entries
from agentinstruct.records.schema import THUDM_FIELDS, Problem, check_record, check_thudm_row


@dataclass
class Finding:
    """A problem located in a file: ``label`` names file, place and record id."""

    label: str
    problem: Problem

    def __str__(self) -> str:
        return f"{self.label} {self.problem}"


CONTRACTS = ("auto", "thudm", "agentinstruct")
"""What records are checked against: THUDM's released rows (``check_thudm_row``), the full record
(``check_record``), or ``auto``, either one per file, chosen by the shape of its first record (``thudm_shaped``)."""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@dataclass
class Defect:
    """One invalid record, named by ``label``, and every problem with it."""

    label: str
    problems: list[Problem]


@dataclass
class FileTally:
    """What one file held: the contract its records were checked against (None if none was read) and counts."""

    contract: str | None = None
    records: int = 0
    bad_records: int = 0
    problems: int = 0

    def line(self, name: str) -> str:
        """The file's summary line.

        Example:
            >>> FileTally("thudm", records=3, bad_records=1, problems=2).line("os.jsonl")
            'os.jsonl: 3 records checked, 1 invalid, 2 problems (thudm contract)'
        """
        against = f"{self.contract} contract" if self.contract else "nothing readable"
        if not self.bad_records:
            return f"{name}: {_count(self.records, 'record')} valid ({against})"
        return (f"{name}: {_count(self.records, 'record')} checked, {self.bad_records} invalid, "
                f"{_count(self.problems, 'problem')} ({against})")


@dataclass
class Report:
    """Outcome of validating many records: counts, every invalid record with its problems, and counts per file."""

    records: int = 0
    bad_records: int = 0
    defects: list[Defect] = field(default_factory=list)
    files: dict[str, FileTally] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.defects

    @property
    def findings(self) -> list[Finding]:
        """Every problem, located, in the order found."""
        return [Finding(d.label, p) for d in self.defects for p in d.problems]

    def add(self, label: str, problems: list[Problem], file: str | None = None, contract: str | None = None) -> None:
        """Count one checked record and keep its problems, if any; with ``file``, in that file's tally too."""
        self.records += 1
        if problems:
            self.bad_records += 1
            self.defects.append(Defect(label, list(problems)))
        if file is None:
            return
        tally = self.files.setdefault(file, FileTally())
        # A file's unreadable lines may come before the first record that settles its contract.
        tally.contract = contract or tally.contract
        tally.records += 1
        tally.bad_records += bool(problems)
        tally.problems += len(problems)

    def summary(self) -> list[str]:
        """One line per file, then the totals when there is not exactly one file."""
        lines = [tally.line(name) for name, tally in self.files.items()]
        if len(self.files) != 1:
            where = f" in {_count(len(self.files), 'file')}" if self.files else ""
            if self.ok:
                lines.append(f"{_count(self.records, 'record')} valid{where}")
            else:
                problems = sum(len(d.problems) for d in self.defects)
                lines.append(f"{_count(self.records, 'record')} checked, {self.bad_records} invalid, "
                             f"{_count(problems, 'problem')}{where}")
        return lines

    def render(self, limit: int = 50) -> str:
        """Every problem of the first ``limit`` invalid records, one a line, a count of the rest, then ``summary()``.

        The cap counts records, not problems, so a record with many problems cannot hide the records after it.

        Example:
            >>> report = Report()
            >>> for n in range(1, 4):
            ...     report.add(f"os.jsonl:line {n}", [Problem("/id", "bad"), Problem("/conversations", "bad")],
            ...                "os.jsonl", "thudm")
            >>> print(report.render(limit=1))
            os.jsonl:line 1 /id: bad
            os.jsonl:line 1 /conversations: bad
            ... and 4 more problems
            os.jsonl: 3 records checked, 3 invalid, 6 problems (thudm contract)
        """
        lines = [str(Finding(d.label, p)) for d in self.defects[:limit] for p in d.problems]
        hidden = sum(len(d.problems) for d in self.defects[limit:])
        if hidden:
            lines.append(f"... and {hidden} more problems")
        return "\n".join(lines + self.summary())


class InvalidRecords(ValueError):
    """Raised by writers when records fail validation; nothing has been written."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__("invalid records, nothing written:\n" + report.render(limit=20))


def thudm_shaped(row: Any) -> bool:
    """Whether a row has THUDM's shape: exactly ``id`` and ``conversations``.

    Example:
        >>> thudm_shaped({"id": "os_0", "conversations": []}), thudm_shaped({"id": "os_0"})
        (True, False)
    """
    return isinstance(row, dict) and set(row) == set(THUDM_FIELDS)


def check_entries(entries: Iterable[Entry], split: str | None = None, contract: str = "agentinstruct") -> Report:
    """Validate located records, including duplicate ids within one file and, with ``split``, each record's split.

    ``contract`` is one of ``CONTRACTS``; with ``auto`` each file's first record decides, and records of the other
    shape in that file are reported as invalid under the file's contract. ``split`` applies to the agentinstruct
    contract (a THUDM row has no split field).

    Example:
        >>> check_entries([]).ok
        True
        >>> rows = [{"id": "os_0", "conversations": [{"from": "human", "value": "q", "loss": None},
        ...                                          {"from": "gpt", "value": "a", "loss": True}]}]
        >>> entries = [Entry(Path("os.jsonl"), f"line {n}", row) for n, row in enumerate(rows * 2, 1)]
        >>> print(check_entries(entries, contract="auto").render())
        os.jsonl:line 2 id=os_0 /id: duplicate id, first seen at line 1
        os.jsonl: 2 records checked, 1 invalid, 1 problem (thudm contract)
    """
    if contract not in CONTRACTS:
        raise ValueError(f"unknown contract {contract!r}; expected one of {', '.join(CONTRACTS)}")
    report = Report()
    seen: dict[tuple[Path, str], str] = {}
    chosen: dict[Path, str] = {}
    for entry in entries:
        problems: list[Problem] = []
        if entry.error:
            problems.append(Problem("", entry.error))
        else:
            if entry.file not in chosen:
                shape = "thudm" if thudm_shaped(entry.record) else "agentinstruct"
                chosen[entry.file] = shape if contract == "auto" else contract
            if chosen[entry.file] == "thudm":
                problems = check_thudm_row(entry.record)
            else:
                problems = check_record(entry.record)
                if split is not None and isinstance(entry.record, dict) and entry.record.get("split") != split:
                    problems.append(Problem("/split", f"is {entry.record.get('split')!r}, not {split!r}"))
            rid = entry.record.get("id") if isinstance(entry.record, dict) else None
            if isinstance(rid, str):
                key = (entry.file, rid)
                if key in seen:
                    problems.append(Problem("/id", f"duplicate id, first seen at {seen[key]}"))
                else:
                    seen[key] = entry.where
        report.add(entry.label, problems, str(entry.file), chosen.get(entry.file))
    return report


def check_records(records: Iterable[dict[str, Any]], source: str = "<records>", split: str | None = None) -> Report:
    """Validate in-memory records; each is named by its index in ``source``. With ``split``, each must belong to it.

    Example:
        >>> check_records([{"id": "x"}]).bad_records
        1
    """
    return check_entries((Entry(Path(source), f"record {n}", rec) for n, rec in enumerate(records)), split)


def validate_paths(paths: Iterable[Path], contract: str = "agentinstruct") -> Report:
    """Validate JSON, JSONL, Parquet files and dataset dirs against ``contract`` (one of ``CONTRACTS``).

    Example (a dataset dir made from the THUDM sample shipped with the package, the sample itself, and a file that
    is not there):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> validate_paths([Path("out")]).ok
        True
        >>> paths = [Path(str(sample)), Path("out/data/default"), Path("os.jsonl")]
        >>> print(validate_paths(paths, contract="auto").render())
        os.jsonl:file /: no such file or directory
        .../thudm_sample.jsonl: 7 records valid (thudm contract)
        out/data/default/alfworld-....parquet: 2 records valid (agentinstruct contract)
        out/data/default/db-....parquet: 1 record valid (agentinstruct contract)
        out/data/default/mind2web-....parquet: 1 record valid (agentinstruct contract)
        out/data/default/os-....parquet: 1 record valid (agentinstruct contract)
        out/data/default/webshop-....parquet: 2 records valid (agentinstruct contract)
        os.jsonl: 1 record checked, 1 invalid, 1 problem (nothing readable)
        15 records checked, 1 invalid, 1 problem in 7 files
    """
    def entries() -> Iterable[Entry]:
        for path in paths:
            yield from read_entries(Path(path))

    return check_entries(entries(), contract=contract)
