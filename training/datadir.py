"""The dir a training set is kept in, as ``agentinstruct mix`` and ``agentinstruct pairs`` write it.

One Parquet file ``data/train-<sha256[:12]>.parquet``, a JSON manifest listing
it with its full sha256 and row count, and a README.md card. The data file is
named by its content, so a rewrite never replaces a file the manifest still
points at: the new file is written, then the manifest and card, and only then
the older data files are removed. Reading checks every listed file against its
sha256, so a dir changed by hand is refused rather than trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from agentinstruct.datasetdir.fileutil import atomic_write_text, sha256_file
from agentinstruct.datasetdir.layout import write_parquet_by_hash


def write_train_dir(out: Path, rows: list[dict[str, Any]], schema: pa.Schema, manifest_name: str,
                    manifest: dict[str, Any], card: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """Write ``rows`` (as ``schema``), the manifest (``manifest`` with its ``data_files``) as ``manifest_name`` and
    ``card(manifest)`` as README.md to ``out``; returns the manifest written.

    Example:
        >>> schema = pa.schema([("id", pa.string())])
        >>> m = write_train_dir(Path("d"), [{"id": "a"}], schema, "m.json", {"kind": "demo"}, lambda m: "# demo\\n")
        >>> m["kind"], m["data_files"]
        ('demo', [{'path': 'data/train-....parquet', 'sha256': '...', 'rows': 1}])
        >>> sorted(p.name for p in Path("d").iterdir())
        ['README.md', 'data', 'm.json']
    """
    out = Path(out)
    final, digest = write_parquet_by_hash(out / "data", "train", pa.Table.from_pylist(rows, schema=schema))
    manifest = {**manifest, "data_files": [{"path": final.relative_to(out).as_posix(), "sha256": digest,
                                            "rows": len(rows)}]}
    atomic_write_text(out / manifest_name, json.dumps(manifest, indent=2) + "\n")
    atomic_write_text(out / "README.md", card(manifest))
    for stale in (out / "data").glob("train-*.parquet"):
        if stale != final:
            stale.unlink()
    return manifest


def read_train_rows(root: Path, manifest: dict[str, Any], manifest_name: str) -> list[dict[str, Any]]:
    """The rows of every data file ``manifest`` (read from ``root/manifest_name``) lists, each checked against its
    sha256 (``FileNotFoundError`` when one is missing, ``ValueError`` when one differs).

    Read with pyarrow rather than ``load_dataset(DIR)``: datasets 5.2 caches a
    local dir by its name and config, not its files, so two dirs named ``mix``
    would silently share the first one's rows.

    Example:
        >>> schema = pa.schema([("id", pa.string())])
        >>> m = write_train_dir(Path("d"), [{"id": "a"}], schema, "m.json", {}, lambda m: "")
        >>> read_train_rows(Path("d"), m, "m.json")
        [{'id': 'a'}]
        >>> read_train_rows(Path("d"), {"data_files": [{"path": "data/x.parquet", "sha256": ""}]}, "m.json")
        Traceback (most recent call last):
        ...
        FileNotFoundError: d: data/x.parquet listed in m.json is missing
    """
    rows: list[dict[str, Any]] = []
    for f in manifest["data_files"]:
        file = root / f["path"]
        if not file.exists():
            raise FileNotFoundError(f"{root}: {f['path']} listed in {manifest_name} is missing")
        if sha256_file(file) != f["sha256"]:
            raise ValueError(f"{root}: {f['path']} does not match its sha256 in {manifest_name}")
        rows.extend(pq.read_table(file).to_pylist())
    return rows
