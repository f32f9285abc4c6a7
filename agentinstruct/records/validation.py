"""Validating records and files: every problem named by file, record and field, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.records.recordio import Entry, read_entries
from agentinstruct.records.schema import Problem, check_record


@dataclass
class Finding:
    """A problem located in a file: ``label`` names file, place and record id."""

    label: str
    problem: Problem

    def __str__(self) -> str:
        return f"{self.label} {self.problem}"


@dataclass
class Report:
    """Outcome of validating many records: counts and every finding."""

    records: int = 0
    bad_records: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, label: str, problems: list[Problem]) -> None:
        """Count one checked record and keep its problems, if any."""
        self.records += 1
        if problems:
            self.bad_records += 1
            self.findings.extend(Finding(label, p) for p in problems)

    def render(self, limit: int = 50) -> str:
        """Findings, one a line, capped at ``limit`` with a count of the rest."""
        lines = [str(f) for f in self.findings[:limit]]
        if len(self.findings) > limit:
            lines.append(f"... and {len(self.findings) - limit} more problems")
        lines.append(f"{self.records} records checked, {self.bad_records} invalid")
        return "\n".join(lines)


class InvalidRecords(ValueError):
    """Raised by writers when records fail validation; nothing has been written."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__("invalid records, nothing written:\n" + report.render(limit=20))


def check_entries(entries: Iterable[Entry], split: str | None = None) -> Report:
    """Validate located records, including duplicate ids within one file and, with ``split``, each record's split.

    Example:
        >>> check_entries([]).ok
        True
    """
    report = Report()
    seen: dict[tuple[Path, str], str] = {}
    for entry in entries:
        problems: list[Problem] = []
        if entry.error:
            problems.append(Problem("", entry.error))
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
        report.add(entry.label, problems)
    return report


def check_records(records: Iterable[dict[str, Any]], source: str = "<records>", split: str | None = None) -> Report:
    """Validate in-memory records; each is named by its index in ``source``. With ``split``, each must belong to it.

    Example:
        >>> check_records([{"id": "x"}]).bad_records
        1
    """
    return check_entries((Entry(Path(source), f"record {n}", rec) for n, rec in enumerate(records)), split)


def validate_paths(paths: Iterable[Path]) -> Report:
    """Validate JSON, JSONL, Parquet files and dataset dirs.

    Example (a dataset dir made from the THUDM sample shipped with the package, and a file that is not there):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'mind2web': 1}
        >>> validate_paths([Path("out")]).ok
        True
        >>> print(validate_paths([Path("out"), Path("os.jsonl")]).render())
        os.jsonl:file /: no such file or directory
        7 records checked, 1 invalid
    """
    def entries() -> Iterable[Entry]:
        for path in paths:
            yield from read_entries(Path(path))

    return check_entries(entries())
