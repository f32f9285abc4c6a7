"""``pairs``: DPO preference pairs (a kept trajectory against a failed one of the same task) from a dataset dir."""

from __future__ import annotations

import argparse
from pathlib import Path


def _pairs(args: argparse.Namespace) -> int:
    from agentinstruct.training.pairs import pairs_from_dir

    if args.max_pairs_per_task < 0:
        raise ValueError(f"--max-pairs-per-task must be >= 0 (0: every combination), got {args.max_pairs_per_task}")
    k = None if args.max_pairs_per_task == 0 else args.max_pairs_per_task
    manifest = pairs_from_dir(args.dir, args.out, args.splits, k, args.seed)
    for split, c in manifest["splits"].items():
        skipped = ", ".join(f"{name} {n}" for name, n in c["skipped"].items() if n) or "none"
        print(f"{split}: {c['records']} records, {c['tasks']} tasks ({c['groups']} groups), {c['tasks_with_both']} "
              f"tasks with both a kept and a failed trajectory, {c['pairs']} pairs (skipped: {skipped})")
    total = manifest["total"]
    print(f"wrote {total['pairs']} pairs to {args.out} ({total['tasks_with_both']} of {total['tasks']} tasks paired)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pairs`` to the CLI."""
    p = sub.add_parser("pairs", help="preference pairs for DPO from a dataset dir's all config: per task, a kept "
                                     "trajectory against a failed one")
    p.add_argument("dir", type=Path, help="dataset dir (from agentinstruct build, with failures in its all config)")
    p.add_argument("--out", type=Path, required=True, help="pairs dir to write (load_dataset(OUT, split='train'))")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="only these splits (default: every split of DIR)")
    p.add_argument("--max-pairs-per-task", type=int, default=1, metavar="K",
                   help="at most K pairs per task (per question on query splits), each trajectory used once before "
                        "any twice; 0 for every combination (default 1, as ETO)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw among a task's combinations (default 0)")
    p.set_defaults(func=_pairs)
