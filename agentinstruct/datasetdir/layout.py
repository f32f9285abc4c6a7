"""The dataset dir: exactly what goes to the Hub, and what ``load_dataset(DIR, ...)`` reads.

Layout::

    DIR/README.md                       card; its YAML declares configs and dataset_info
    DIR/manifest.json                   files with hashes and row counts, versions
    DIR/trajectory.schema.json          the record contract the rows follow
    DIR/data/{config}/{split}-{hash}.parquet
    DIR/plots/{name}-{hash}.png         the card's pictures (reward and turn distributions)
    DIR/reports/*.json                  filter reports the card shows (dedup, decontamination)

Configs: ``default`` holds the kept trajectories of each split (as THUDM
released them), ``all`` every scored trajectory with its filter decision.

Crash safety: data files and plots are named by their content hash and
written atomically, the manifest is written next and the card last, and only
then are files no longer referenced deleted. A crash at any point leaves the previous
card pointing at files that still exist; ``manifest.json`` is the commit
point that the next write or ``agentinstruct card`` picks up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from agentinstruct import SPLITS, __version__
from agentinstruct.datasetdir.fileutil import atomic_write, atomic_write_text, sha256_file
from agentinstruct.records.schema import SCHEMA_FILE, features, schema_text, schema_version
from agentinstruct.records.validation import InvalidRecords, check_records

CONFIGS: tuple[str, ...] = ("default", "all")
MANIFEST = "manifest.json"
CARD = "README.md"
PLOTS = "plots"
REPORTS = "reports"


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


def report_assets(root: Path) -> list[Asset]:
    """The filter reports in ``DIR/reports`` (written by ``agentinstruct dedup`` and ``decontaminate``).

    Example:
        >>> [a.path for a in report_assets(Path("out"))]  # doctest: +SKIP
        ['reports/decontamination.json', 'reports/dedup.json']
    """
    return [
        Asset(p.relative_to(root).as_posix(), sha256_file(p), p.stat().st_size)
        for p in sorted((Path(root) / REPORTS).glob("*.json"))
    ]


def arrow_schema() -> pa.Schema:
    """Arrow schema of the Parquet files, with the ``datasets`` features in its metadata."""
    return features().arrow_schema


def write_parquet_by_hash(folder: Path, stem: str, table: pa.Table) -> tuple[Path, str]:
    """Write ``table`` atomically as ``folder/{stem}-{sha256[:12]}.parquet``; returns the path and the full sha256.

    Named by content, a new file never replaces one a card or manifest still points at.

    Example:
        >>> write_parquet_by_hash(Path("out/data/all"), "os", table)  # doctest: +SKIP
        (PosixPath('out/data/all/os-1f2e3d4c5b6a.parquet'), '1f2e3d4c5b6a...')
    """
    staging = Path(folder) / f".{stem}.staging.parquet"
    atomic_write(staging, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    digest = sha256_file(staging)
    final = Path(folder) / f"{stem}-{digest[:12]}.parquet"
    staging.replace(final)
    return final, digest


def _write_parquet(root: Path, config: str, split: str, records: list[dict[str, Any]]) -> DataFile:
    table = pa.Table.from_pylist(records, schema=arrow_schema())
    final, digest = write_parquet_by_hash(root / "data" / config, split, table)
    return DataFile(config, split, final.relative_to(root).as_posix(), len(records), digest, final.stat().st_size)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The dir's manifest, or None for a dir never written.

    Example:
        >>> read_manifest(Path("out"))["schema_version"]  # doctest: +SKIP
        '1.0.0'
    """
    path = Path(root) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def data_files(root: Path) -> list[DataFile]:
    """The data files the manifest commits to, in config then split order.

    Example:
        >>> [f.path for f in data_files(Path("out"))]  # doctest: +SKIP
        ['data/default/os-1f2e3d4c5b6a.parquet', 'data/all/os-0a1b2c3d4e5f.parquet']
    """
    manifest = read_manifest(Path(root))
    if manifest is None:
        return []
    return [DataFile(**f) for f in manifest["data_files"]]


def _ordered(files: Iterable[DataFile]) -> list[DataFile]:
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
        "data_files": [f.__dict__ for f in _ordered(files)],
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


def commit(root: Path, files: list[DataFile], hub_repo: str | None = None) -> None:
    """Write schema, plots, manifest and card for ``files``, then delete data files and plots nothing references.

    ``hub_repo`` None keeps the repo the manifest already names.
    """
    # These read the data back through this module.
    from agentinstruct.datasetdir.card import render_card
    from agentinstruct.datasetdir.plots import write_plots
    from agentinstruct.datasetdir.stats import split_stats

    root = Path(root)
    hub_repo = hub_repo or (read_manifest(root) or {}).get("hub_repo")
    atomic_write_text(root / SCHEMA_FILE, schema_text())
    stats = split_stats(root, files)  # read once, for both the plots and the card
    assets = write_plots(root, files, stats) + report_assets(root)
    manifest = manifest_for(root, files, assets, hub_repo)
    atomic_write_text(root / MANIFEST, manifest_text(manifest))
    atomic_write_text(root / CARD, render_card(root, stats=stats))
    keep = {f.path for f in files} | {a.path for a in assets}
    for stale in [*(root / "data").rglob("*.parquet"), *(root / PLOTS).glob("*.png")]:
        if stale.relative_to(root).as_posix() not in keep:
            stale.unlink()


def refresh(root: Path) -> list[DataFile]:
    """Re-derive hashes, sizes and row counts of a dir's data files from disk, then rewrite manifest and card.

    This is ``agentinstruct card DIR``: after a crash between manifest and card,
    or after hand edits, the card and manifest agree with the data again.
    Without a manifest every ``data/{config}/{split}-*.parquet`` is taken.

    Example:
        >>> refresh(Path("out"))  # doctest: +SKIP
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
    files = _ordered(files)
    commit(root, files)
    return files


def write_split(root: Path, split: str, records: Iterable[dict[str, Any]]) -> list[DataFile]:
    """Validate every scored record of one split, then (re)write its ``all`` and ``default`` files.

    Other splits already in the dir are kept. Raises ``InvalidRecords`` listing
    each bad record before anything is written.

    Example:
        >>> write_split(Path("out"), "os", records)  # doctest: +SKIP
        [DataFile(config='all', split='os', ...), DataFile(config='default', split='os', ...)]
    """
    root = Path(root)
    records = list(records)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    report = check_records(records, source=f"{split} records", split=split)
    if not report.ok:
        raise InvalidRecords(report)
    new = [
        _write_parquet(root, "all", split, records),
        _write_parquet(root, "default", split, [r for r in records if r["filter"]["kept"]]),
    ]
    others = [f for f in data_files(root) if f.split != split]
    files = _ordered(others + new)
    commit(root, files)
    return new


def iter_records(root: Path, config: str = "default", split: str | None = None) -> Iterator[dict[str, Any]]:
    """Records of one config (and optionally one split) of a dataset dir, as dicts.

    Example:
        >>> next(iter_records(Path("out"), "default", "os"))["id"]  # doctest: +SKIP
        'os_0'
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIGS)}")
    for f in data_files(Path(root)):
        if f.config == config and (split is None or f.split == split):
            yield from pq.read_table(Path(root) / f.path).to_pylist()
