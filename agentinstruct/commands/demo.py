"""``agentinstruct demo``: the main job on embedded defaults, with no keys and no network."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from agentinstruct.thudm import import_thudm
from agentinstruct.validation import validate_paths


def _demo(args: argparse.Namespace) -> int:
    sample = resources.files("agentinstruct").joinpath("samples/thudm_sample.jsonl")
    with resources.as_file(sample) as path:
        counts = import_thudm(str(path), args.out)
    report = validate_paths([args.out])
    print(f"dataset dir {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; {report.records} records valid" if report.ok else report.render())
    print(f'load it with: datasets.load_dataset("{args.out}", split="os")')
    return 0 if report.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the CLI."""
    p = sub.add_parser("demo", help="build a dataset dir from the embedded defaults (no keys, no network)")
    p.add_argument("--out", type=Path, default=Path("demo-out"))
    p.set_defaults(func=_demo)
