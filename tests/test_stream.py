"""Streaming writes: a split written row group by row group gives the rows a whole-table write gave, a bad record
anywhere still writes nothing, and journals hold where records lie, not the records."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factory import record

from agentinstruct.collection.journal import Finished, Journal, journal_records
from agentinstruct.datasetdir.layout import ROW_GROUP_ROWS, arrow_schema, data_files, iter_records
from agentinstruct.datasetdir.release import RecordStream, write_split
from agentinstruct.records.schema import features
from agentinstruct.records.validation import InvalidRecords

N = 2 * ROW_GROUP_ROWS + 500


def _records(n: int = N) -> list[dict]:
    return [record(i, kept=i % 3 != 0, reward=0.0 if i % 3 == 0 else 1.0) for i in range(n)]


def _whole_table_bytes(records: list[dict]) -> bytes:
    """The file as it was written before streaming: one table, one ``pq.write_table``."""
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records, schema=arrow_schema()), sink, compression="zstd")
    return sink.getvalue()


def test_a_streamed_split_gives_the_rows_of_a_whole_table_write(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    records = _records()
    root = tmp_path / "ds"
    reads = []
    write_split(root, "os", RecordStream(lambda: (reads.append(1), iter(records))[1]))
    assert len(reads) == 2  # checked in one pass, written in the next
    whole = pq.read_table(io.BytesIO(_whole_table_bytes(records))).to_pylist()
    every = {f.config: f for f in data_files(root)}
    meta = pq.ParquetFile(root / every["all"].path).metadata
    assert (meta.num_rows, meta.num_row_groups) == (N, 3)
    assert list(iter_records(root, "all", "os")) == whole
    assert list(iter_records(root, "default", "os")) == [r for r in whole if r["filter"]["kept"]]
    loaded = datasets.load_dataset(str(root), "all", split="os", cache_dir=str(tmp_path / "cache"))
    assert loaded.features == features() and loaded.to_list() == whole


def test_a_split_of_one_row_group_is_the_same_file_as_before(tmp_path):
    records = _records(7)
    write_split(tmp_path, "os", records)
    [every] = [f for f in data_files(tmp_path) if f.config == "all"]
    assert every.sha256 == hashlib.sha256(_whole_table_bytes(records)).hexdigest()


def test_a_bad_record_anywhere_writes_nothing_and_is_named(tmp_path):
    write_split(tmp_path, "os", _records(3))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    records = _records()
    records[1777] = {**records[1777], "reward": 2.0}
    with pytest.raises(InvalidRecords, match=r"record 1777 id=os_1777 /reward"):
        write_split(tmp_path, "os", RecordStream(lambda: iter(records)))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # no file, no staging file


def test_a_journal_keeps_where_records_lie_and_reads_them_back_in_episode_order(tmp_path):
    with Journal.open(tmp_path, "os", {"split": "os"}) as journal:
        for n in reversed(range(5)):
            journal.finish(f"t{n}#0", n, [record(n)])
        assert all(isinstance(entry, Finished) for entry in journal.finished.values())
        assert journal.records("t3#0") == [record(3)]
    with Journal.open(tmp_path, "os", {"split": "os"}) as journal:  # resumed: the same entries, read line by line
        assert journal.finished["t3#0"].kept == (True,) and journal.records("t3#0") == [record(3)]
    assert [r["id"] for r in journal_records(tmp_path, "os")] == [f"os_{n}" for n in range(5)]
