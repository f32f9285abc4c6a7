"""The release step of a dataset dir: data files in, then stats, plots, manifest and card, in that order.

``write_splits`` validates records and writes their data files; ``commit``
computes the split numbers once, draws the plots, writes the manifest (the
commit point) and renders the card, then deletes what nothing references.
Every write of a dir goes through ``commit`` once, however many splits it
changes; ``refresh`` (``agentinstruct card DIR``) re-derives it all from disk.
The order is what makes a crash harmless: see ``agentinstruct.datasetdir.layout``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from agentinstruct.datasetdir import card
from agentinstruct.datasetdir.fileutil import atomic_write_text, sha256_file
from agentinstruct.datasetdir.layout import (CARD, CONFIGS, MANIFEST, PLOTS, DataFile, DataFileWriter, data_files,
                                             manifest_for, manifest_text, ordered, read_manifest, side_assets)
from agentinstruct.datasetdir.plots import write_plots
from agentinstruct.datasetdir.stats import split_stats
from agentinstruct.records.validation import InvalidRecords, check_records
from agentinstruct.schemas import SCHEMA_FILE, SPLITS, schema_text


def commit(root: Path, files: list[DataFile], hub_repo: str | None = None) -> None:
    """Write schema, plots, manifest and card for ``files``, then delete data files and plots nothing references.

    ``hub_repo`` None keeps the repo the manifest already names.
    """
    root = Path(root)
    hub_repo = hub_repo or (read_manifest(root) or {}).get("hub_repo")
    atomic_write_text(root / SCHEMA_FILE, schema_text())
    stats = split_stats(root, files)  # read once, for both the plots and the card
    assets = write_plots(root, files, stats) + side_assets(root)
    manifest = manifest_for(root, files, assets, hub_repo)
    atomic_write_text(root / MANIFEST, manifest_text(manifest))
    atomic_write_text(root / CARD, card.render_card(root, stats=stats))
    keep = {f.path for f in files} | {a.path for a in assets}
    for stale in [*(root / "data").rglob("*.parquet"), *(root / PLOTS).glob("*.png")]:
        if stale.relative_to(root).as_posix() not in keep:
            stale.unlink()


def refresh(root: Path) -> list[DataFile]:
    """Re-derive hashes, sizes and row counts of a dir's data files from disk, then rewrite manifest and card.

    This is ``agentinstruct card DIR``: after a crash between manifest and card,
    or after hand edits, the card and manifest agree with the data again.
    Without a manifest every ``data/{config}/{split}-*.parquet`` is taken.

    Example (a dir made from the THUDM sample shipped with the package, then its manifest lost):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> Path("out/manifest.json").unlink()
        >>> [(f.config, f.split, f.rows) for f in refresh(Path("out"))]
        [('default', 'os', 1), ('default', 'db', 1), ('default', 'alfworld', 2), ('default', 'webshop', 2),
         ('default', 'mind2web', 1), ('all', 'os', 1), ('all', 'db', 1), ('all', 'alfworld', 2), ('all', 'webshop', 2),
         ('all', 'mind2web', 1)]
        >>> Path("out/manifest.json").exists()
        True
    """
    root = Path(root)
    paths = [root / f.path for f in data_files(root)] or sorted((root / "data").glob("*/*-*.parquet"))
    if not paths:
        raise FileNotFoundError(f"{root}: no data files (expected data/{{config}}/{{split}}-*.parquet)")
    files = []
    for path in paths:
        config, split = path.parent.name, path.name.rsplit("-", 1)[0]
        if config not in CONFIGS or split not in SPLITS:
            raise ValueError(f"{path}: not a data file of a known config/split")
        rows = pq.ParquetFile(path).metadata.num_rows
        files.append(DataFile(config, split, path.relative_to(root).as_posix(), rows, sha256_file(path), path.stat().st_size))
    files = ordered(files)
    commit(root, files)
    return files


def write_splits(root: Path, splits: Mapping[str, Iterable[dict[str, Any]]]) -> list[DataFile]:
    """Validate every scored record of each split given, then (re)write their ``all`` and ``default`` files and
    commit the dir once.

    Other splits already in the dir are kept. Raises ``InvalidRecords`` listing
    each bad record before anything is written.

    Example (records made from the THUDM sample shipped with the package):
        >>> import json
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import from_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> os_row, db_row = [json.loads(line) for line in sample.read_text().splitlines()[:2]]
        >>> write_splits(Path("out"), {"os": [from_thudm(os_row, "os")], "db": [from_thudm(db_row, "db")]})
        [DataFile(config='all', split='os', path='data/all/os-....parquet', rows=1, ...),
         DataFile(config='default', split='os', ...), DataFile(config='all', split='db', ...),
         DataFile(config='default', split='db', ...)]
        >>> write_splits(Path("out"), {"os": [{"id": "os_1"}]})
        Traceback (most recent call last):
        ...
        agentinstruct.records.validation.InvalidRecords: invalid records, nothing written:
        os records:record 0 id=os_1 /: 'conversations' is a required property
        ...
    """
    root = Path(root)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    # Records are read twice, checked in a first pass and written in a second, so that nothing is written when any
    # is bad without holding them: a list or a ``RecordStream`` reads again, a one-shot iterator is kept in memory.
    batches = {split: list(records) if isinstance(records, Iterator) else records for split, records in splits.items()}
    for split, records in batches.items():
        report = check_records(records, source=f"{split} records", split=split)
        if not report.ok:
            raise InvalidRecords(report)
    # A write that fails half way may leave whole data files no manifest names (one may be a file the manifest
    # does name, with equal content): the next commit deletes what nothing references.
    new = [data_file for split, records in batches.items() for data_file in _write_split_files(root, split, records)]
    others = [f for f in data_files(root) if f.split not in batches]
    commit(root, ordered(others + new))
    return new


def _write_split_files(root: Path, split: str, records: Iterable[dict[str, Any]]) -> list[DataFile]:
    """One pass over a split's records writes both its ``all`` file and its ``default`` file (the kept ones)."""
    writers = [DataFileWriter(root, "all", split), DataFileWriter(root, "default", split)]
    try:
        for record in records:
            writers[0].add(record)
            if record["filter"]["kept"]:
                writers[1].add(record)
        return [writers[0].close(), writers[1].close()]
    finally:
        for writer in writers:  # a staging file left by a failure (a closed writer has none)
            writer.discard()


class RecordStream:
    """Records that can be read more than once, each time afresh from where they live (a build's journals): what
    ``write_splits`` checks, then writes, without holding them.

    Example:
        >>> stream = RecordStream(lambda: iter([{"id": "os_0"}]))
        >>> [r["id"] for r in stream], [r["id"] for r in stream]
        (['os_0'], ['os_0'])
    """

    def __init__(self, read: Callable[[], Iterator[dict[str, Any]]]):
        self._read = read

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._read()


def write_split(root: Path, split: str, records: Iterable[dict[str, Any]]) -> list[DataFile]:
    """``write_splits`` for one split: its ``all`` and ``default`` files, other splits kept.

    Example (a record made from the THUDM sample shipped with the package):
        >>> import json
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import from_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> row = json.loads(sample.read_text().splitlines()[0])
        >>> write_split(Path("out"), "os", [from_thudm(row, "os")])
        [DataFile(config='all', split='os', ...), DataFile(config='default', split='os', ...)]
    """
    return write_splits(root, {split: records})
