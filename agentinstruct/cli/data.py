"""Data commands: validate, import-thudm, export-thudm, card.

Each handler imports what it runs, so that `agentinstruct --help` and `validate` do not load pyarrow's and
datasets' writers they do not use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agentinstruct.schemas import SPLITS


def _validate(args: argparse.Namespace) -> int:
    from agentinstruct.records.validation import validate_paths

    report = validate_paths(args.paths, contract=args.contract)
    print(report.render(limit=args.max_errors))
    return 0 if report.ok else 1


def _import(args: argparse.Namespace) -> int:
    from agentinstruct.records.thudm import import_thudm

    counts = import_thudm(args.src, args.out, split=args.split)
    print(f"imported {sum(counts.values())} rows into {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    from agentinstruct.records.thudm import export_thudm

    n = export_thudm(args.dir, args.out, split=args.split, config=args.config)
    print(f"wrote {n} rows in THUDM's shape to {args.out}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from agentinstruct.datasetdir.release import refresh

    files = refresh(args.dir)
    print(f"rewrote card and manifest of {args.dir} ({len(files)} data files)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data commands to the CLI."""
    p = sub.add_parser("validate", help="check JSON, JSONL, Parquet files or dataset dirs against the record contract "
                                         "or THUDM's")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--max-errors", type=int, default=50,
                   help="invalid records to list with all their problems before summarising the rest (default 50)")
    # validation.CONTRACTS, spelled out so that --help does not import the validator (and jsonschema).
    p.add_argument("--contract", choices=("auto", "thudm", "agentinstruct"), default="auto",
                   help="thudm: rows of id and conversations as THUDM released them; agentinstruct: the full record; "
                        "auto (default): per file, by its first row")
    p.set_defaults(func=_validate)

    p = sub.add_parser("import-thudm", help="convert THUDM/AgentInstruct rows (file, dir or Hub id) into a dataset dir")
    p.add_argument("src", help="JSON, JSONL or Parquet file, a folder of them, or a Hub dataset id")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", choices=SPLITS, help="split of every row (default: from the id prefix)")
    p.set_defaults(func=_import)

    p = sub.add_parser("export-thudm", help="write a dataset dir's rows in THUDM's shape (id + conversations)")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help=".json, .jsonl or .parquet")
    p.add_argument("--split", choices=SPLITS)
    p.add_argument("--config", choices=("default", "all"), default="default")
    p.set_defaults(func=_export)

    p = sub.add_parser("card", help="rewrite a dataset dir's card and manifest from its data")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=_card)
