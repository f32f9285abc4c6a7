"""The dataset dir: exactly what goes to the Hub, and what ``load_dataset(DIR, ...)`` reads.

Layout::

    DIR/README.md                       card; its YAML declares configs and dataset_info
    DIR/manifest.json                   files with hashes and row counts, versions
    DIR/trajectory.schema.json          the record contract the rows follow
    DIR/data/{config}/{split}-{hash}.parquet
    DIR/plots/{name}-{hash}.png         the card's pictures (reward and turn distributions)
    DIR/reports/*.json                  filter reports the card shows (dedup, decontamination)
    DIR/builds/{split}.yaml             each split's resolved build file (every setting it was built with)

Configs: ``default`` holds the kept trajectories of each split (as THUDM
released them), ``all`` every scored trajectory with its filter decision.

Crash safety: data files and plots are named by their content hash and
written atomically, the manifest is written next and the card last, and only
then are files no longer referenced deleted. A crash at any point leaves the previous
card pointing at files that still exist; ``manifest.json`` is the commit
point that the next write or ``agentinstruct card`` picks up.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from agentinstruct import __version__
from agentinstruct.datasetdir.fileutil import atomic_write, fsync_file, sha256_file, staging_file
from agentinstruct.records.schema import features, schema_version
from agentinstruct.schemas import SCHEMA_FILE, SPLITS

CONFIGS: tuple[str, ...] = ("default", "all")
MANIFEST = "manifest.json"
CARD = "README.md"
PLOTS = "plots"
REPORTS = "reports"
BUILDS = "builds"


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of the dir: its config, split, path relative to the dir, rows and hash."""

    config: str
    split: str
    path: str
    rows: int
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Asset:
    """A file beside the data that the card shows and the Hub repo carries: a plot or a filter report."""

    path: str
    sha256: str
    bytes: int


SIDE_FILES: tuple[tuple[str, str], ...] = ((BUILDS, "*.yaml"), (REPORTS, "*.json"))
"""Files other steps leave beside the data, (folder, pattern): the resolved build files (``agentinstruct build``)
and the filter reports (``agentinstruct dedup`` and ``decontaminate``)."""


def side_assets(root: Path) -> list[Asset]:
    """The files other steps left beside the data (``SIDE_FILES``), which the manifest lists and the Hub carries.

    Example (a dir made from the THUDM sample shipped with the package, then deduplicated):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> from agentinstruct.filters.dedup import Deduplicator
        >>> from agentinstruct.filters.dirfilter import filter_dir
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> side_assets(Path("out"))
        []
        >>> filter_dir(Path("out"), Deduplicator(), "dedup")
        {'os': 0, 'db': 0, 'alfworld': 0, 'webshop': 0, 'mind2web': 0}
        >>> [a.path for a in side_assets(Path("out"))]
        ['reports/dedup.json']
    """
    return [
        Asset(p.relative_to(root).as_posix(), sha256_file(p), p.stat().st_size)
        for folder, pattern in SIDE_FILES
        for p in sorted((Path(root) / folder).glob(pattern))
    ]


def arrow_schema() -> pa.Schema:
    """Arrow schema of the Parquet files, with the ``datasets`` features in its metadata."""
    return features().arrow_schema


def write_parquet_by_hash(folder: Path, stem: str, table: pa.Table) -> tuple[Path, str]:
    """Write ``table`` atomically as ``folder/{stem}-{sha256[:12]}.parquet``; returns the path and the full sha256.

    Named by content, a new file never replaces one a card or manifest still points at.

    Example:
        >>> path, digest = write_parquet_by_hash(Path("out/data/all"), "os", pa.table({"id": ["os_0", "os_1"]}))
        >>> path
        PosixPath('out/data/all/os-....parquet')
        >>> path.name == f"os-{digest[:12]}.parquet", len(digest)
        (True, 64)
        >>> write_parquet_by_hash(Path("out/data/all"), "os", pa.table({"id": ["os_0", "os_1"]}))[0] == path
        True
    """
    staging = Path(folder) / f".{stem}.staging.parquet"
    atomic_write(staging, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    digest = sha256_file(staging)
    final = Path(folder) / f"{stem}-{digest[:12]}.parquet"
    staging.replace(final)
    return final, digest


ROW_GROUP_ROWS = 1000
"""Rows per Parquet row group. A data file is written one row group at a time, so a write holds this many
records, never the split (about 3 MB of records at AgentInstruct's 2-4 KB each); 1,000 is also the row group the
``datasets`` library writes itself (``datasets.config.DEFAULT_MAX_BATCH_SIZE``), so readers that page through
rows (the Hub's dataset viewer, ``load_dataset`` streaming) read small groups. A file of up to this many rows is
one row group, byte for byte the file ``pq.write_table`` gives."""


class DataFileWriter:
    """One config/split's data file, written as records stream by: buffered ``ROW_GROUP_ROWS`` at a time into a
    hidden staging file, then named by its content hash (``close``) or removed (``discard``).

    Example:
        >>> writer = DataFileWriter(Path("out"), "all", "os")
        >>> writer.close().rows
        0
    """

    def __init__(self, root: Path, config: str, split: str):
        self.root, self.config, self.split = Path(root), config, split
        self.rows = 0
        self._folder = self.root / "data" / config
        self._tmp = staging_file(self._folder / f"{split}.parquet")
        self._buffer: list[dict[str, Any]] = []
        # The datasets features ride in the Arrow schema's metadata, so load_dataset gives the same rows and types.
        self._writer = pq.ParquetWriter(self._tmp, arrow_schema(), compression="zstd")

    def add(self, record: dict[str, Any]) -> None:
        """Append one record; a full row group goes to disk."""
        self._buffer.append(record)
        if len(self._buffer) == ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=arrow_schema()))
        self.rows += len(self._buffer)
        self._buffer = []

    def close(self) -> DataFile:
        """Finish the file, fsync it and rename it to ``data/{config}/{split}-{sha256[:12]}.parquet``."""
        try:
            if self._buffer or not self.rows:  # an empty file holds one empty row group, as pq.write_table writes it
                self._flush()
            self._writer.close()
            fsync_file(self._tmp)
            digest = sha256_file(self._tmp)
            final = self._folder / f"{self.split}-{digest[:12]}.parquet"
            self._tmp.replace(final)
        except BaseException:
            self.discard()
            raise
        return DataFile(self.config, self.split, final.relative_to(self.root).as_posix(), self.rows, digest,
                        final.stat().st_size)

    def discard(self) -> None:
        """Drop the file: nothing of it stays in the dir."""
        with contextlib.suppress(Exception):  # a writer already closed (or broken) has nothing left to flush
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_data_file(root: Path, config: str, split: str, records: Iterable[dict[str, Any]]) -> DataFile:
    """Write one config/split's records as a content-addressed Parquet file of the dir, row group by row group;
    its ``DataFile``.

    Example:
        >>> write_data_file(Path("out"), "all", "os", []).rows
        0
    """
    writer = DataFileWriter(root, config, split)
    try:
        for record in records:
            writer.add(record)
    except BaseException:
        writer.discard()
        raise
    return writer.close()


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The dir's manifest, or None for a dir never written.

    Example:
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> read_manifest(Path("out"))["rows"]
        {'default': {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}, 'all': {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}}
        >>> read_manifest(Path("never-written")) is None
        True
    """
    path = Path(root) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def data_files(root: Path) -> list[DataFile]:
    """The data files the manifest commits to, in config then split order.

    Example:
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> [f.path for f in data_files(Path("out"))]
        ['data/default/os-....parquet', 'data/default/db-....parquet', 'data/default/mind2web-....parquet',
         'data/all/os-....parquet', 'data/all/db-....parquet', 'data/all/mind2web-....parquet']
    """
    manifest = read_manifest(Path(root))
    if manifest is None:
        return []
    return [DataFile(**f) for f in manifest["data_files"]]


def ordered(files: Iterable[DataFile]) -> list[DataFile]:
    """Data files in config, then split order (THUDM's split order)."""
    return sorted(files, key=lambda f: (CONFIGS.index(f.config), SPLITS.index(f.split)))


def manifest_for(root: Path, files: list[DataFile], assets: Iterable[Asset] = (), hub_repo: str | None = None) -> dict[str, Any]:
    """The manifest of a dir holding ``files`` and ``assets``: deterministic, so equal data gives equal bytes.

    ``hub_repo`` is the Hub repo the dir is published to (set by ``agentinstruct publish``; the card's load
    examples name it).
    """
    counts: dict[str, dict[str, int]] = {c: {} for c in CONFIGS}
    for f in files:
        counts[f.config][f.split] = f.rows
    return {
        "format": "agentinstruct-dataset",
        "schema_version": schema_version(),
        "builder_version": __version__,
        "hub_repo": hub_repo,
        "rows": counts,
        "data_files": [f.__dict__ for f in ordered(files)],
        "schema_file": {"path": SCHEMA_FILE, "sha256": sha256_file(Path(root) / SCHEMA_FILE)},
        "assets": [a.__dict__ for a in assets],
    }


def manifest_text(manifest: dict[str, Any]) -> str:
    """The bytes ``manifest.json`` holds for ``manifest`` (one serialization, so equal manifests give equal files).

    Example:
        >>> manifest_text({"format": "agentinstruct-dataset"})
        '{\\n  "format": "agentinstruct-dataset"\\n}\\n'
    """
    return json.dumps(manifest, indent=2, sort_keys=False) + "\n"


def iter_records(root: Path, config: str = "default", split: str | None = None) -> Iterator[dict[str, Any]]:
    """Records of one config (and optionally one split) of a dataset dir, as dicts.

    Example:
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> next(iter_records(Path("out"), "default", "os"))["id"]
        'os_0'
        >>> [r["id"] for r in iter_records(Path("out"), "all")]
        ['os_0', 'db_0', 'alfworld_0', 'alfworld_1', 'webshop_0', 'webshop_1', 'mind2web_0']
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIGS)}")
    for f in data_files(Path(root)):
        if f.config == config and (split is None or f.split == split):
            for batch in pq.ParquetFile(Path(root) / f.path).iter_batches(batch_size=ROW_GROUP_ROWS):
                yield from batch.to_pylist()
