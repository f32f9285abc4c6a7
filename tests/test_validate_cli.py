"""`agentinstruct validate`: every bad record named by file, place, id and field; exit codes; no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from factory import record

from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import arrow_schema
from agentinstruct.datasetdir.release import write_split


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_valid_files_of_every_kind_exit_0(tmp_path: Path, capsys) -> None:
    recs = [record(0), record(1, kept=False, reward=0.0)]
    jsonl = _jsonl(tmp_path / "a.jsonl", recs)
    js = tmp_path / "a.json"
    js.write_text(json.dumps(recs))
    one = tmp_path / "one.json"
    one.write_text(json.dumps(recs[0]))
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(recs, schema=arrow_schema()), parquet)
    write_split(tmp_path / "dir", "os", recs)
    assert main(["validate", str(jsonl), str(js), str(one), str(parquet), str(tmp_path / "dir")]) == 0
    assert "records valid" in capsys.readouterr().out


def test_bad_records_are_listed_with_file_place_id_and_pointer(tmp_path: Path, capsys) -> None:
    bad = record(1)
    bad["reward"] = 2.0
    path = _jsonl(tmp_path / "a.jsonl", [record(0), bad, "{not json", record(0)])
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:line 2 id=os_1 /reward:" in out
    assert f"{path}:line 3 /: not valid JSON" in out
    assert f"{path}:line 4 id=os_0 /id: duplicate id, first seen at line 1" in out
    assert "4 records checked, 3 invalid" in out


def test_output_is_capped_with_a_count_of_the_rest(tmp_path: Path, capsys) -> None:
    rows = []
    for n in range(30):
        r = record(n)
        r["reward"] = 5.0
        rows.append(r)
    path = _jsonl(tmp_path / "many.jsonl", rows)
    assert main(["validate", "--max-errors", "10", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 12
    assert out[10] == "... and 20 more problems"


def test_truncated_parquet_and_unknown_type_are_reported(tmp_path: Path, capsys) -> None:
    good = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([record(0)], schema=arrow_schema()), good)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = tmp_path / "a.csv"
    other.write_text("id\n")
    assert main(["validate", str(cut), str(other), str(tmp_path / "missing.jsonl")]) == 1
    out = capsys.readouterr().out
    assert f"{cut}:file /: not a readable Parquet file" in out
    assert f"{other}:file /: unknown file type '.csv'" in out
    assert "missing.jsonl:file /: no such file or directory" in out


def test_console_script_never_prints_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"id": 3}, 7, "x"]')
    proc = subprocess.run([sys.executable, "-m", "agentinstruct.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{path}:item 1 /: 7 is not of type 'object'" in proc.stdout
