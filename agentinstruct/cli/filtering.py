"""``agentinstruct dedup`` and ``agentinstruct decontaminate``: filter steps run over a written dataset dir.

Both drop kept records (they stay in the ``all`` config with their reason),
write their findings to ``DIR/reports/`` and rewrite the card, which shows them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# The AgentBench task data sits beside the repo on the machines this project runs on; override with the env var.
DEFAULT_AGENTBENCH = Path(os.environ.get("AGENTINSTRUCT_AGENTBENCH", "../shared/data/agentbench"))


def _summary(dropped: dict[str, int], found: list[dict], line) -> str:
    lines = [f"  {split}: {n} dropped" for split, n in dropped.items()]
    lines += [f"  {line(f)}" for f in found[:20]] + ([f"  ... and {len(found) - 20} more"] if len(found) > 20 else [])
    return "\n".join(lines)


def _dedup(args: argparse.Namespace) -> int:
    from agentinstruct.filters.dedup import Deduplicator
    from agentinstruct.filters.dirfilter import filter_dir

    step = Deduplicator(keys=args.keys, scope=args.scope, threshold=None if args.exact_only else args.threshold,
                        shingle=args.shingle)
    dropped = filter_dir(args.dir, step, "dedup")
    print(f"dedup {args.dir}: checked {step.stats.checked} kept records, dropped {step.stats.dropped} ({step.bar})")
    print(_summary(dropped, step.found(), lambda f: f"{f['id']}: {f['key']} of {f['of']} ({f['how']})"))
    print(f"report: {args.dir / 'reports' / 'dedup.json'}")
    return 0


def _eval_arg(value: str) -> tuple[Path, str | None]:
    if Path(value).exists() or ":" not in value:
        return Path(value), None
    path, field = value.rsplit(":", 1)
    return Path(path), field


def _decontaminate(args: argparse.Namespace) -> int:
    from agentinstruct.filters.decontam import Decontaminator, agentbench_eval_sets, load_eval_set
    from agentinstruct.filters.dirfilter import filter_dir

    sets = [load_eval_set(path, field) for path, field in args.eval]
    if not args.no_agentbench:
        if args.agentbench.exists():
            sets = agentbench_eval_sets(args.agentbench) + sets
        elif not sets:
            raise FileNotFoundError(f"{args.agentbench}: AgentBench data not found; pass --agentbench DIR or --eval FILE")
    step = Decontaminator(sets, n=args.n, min_words=args.min_words, fields=args.fields, workers=args.workers)
    dropped = filter_dir(args.dir, step, "decontamination")
    short = f", {len(step.too_short)} too short to check" if step.too_short else ""
    print(f"decontaminate {args.dir}: {len(sets)} eval sets ({step.instances} instances{short}), n={args.n}; "
          f"checked {step.stats.checked} kept records, dropped {step.stats.dropped}")
    print(_summary(dropped, step.found(), lambda f: f"{f['id']} {f['field']} ~ {f['eval_id']}: \"{f['ngram']}\""))
    print(f"report: {args.dir / 'reports' / 'decontamination.json'}")
    return 0


def _dedup_arguments(p: argparse.ArgumentParser) -> None:
    from agentinstruct.filters.dedup import KEYS, SCOPES

    p.add_argument("dir", type=Path)
    p.add_argument("--keys", nargs="+", choices=KEYS, default=list(KEYS), help="what to compare (default: both)")
    p.add_argument("--scope", choices=SCOPES, default="global", help="compare across splits (global) or within each")
    p.add_argument("--threshold", type=float, default=0.8, help="Jaccard similarity that makes a near duplicate")
    p.add_argument("--shingle", type=int, default=3, help="words per shingle for the Jaccard similarity")
    p.add_argument("--exact-only", action="store_true", help="drop exact duplicates only")


def _decontaminate_arguments(p: argparse.ArgumentParser) -> None:
    from agentinstruct.filters.decontam import DEFAULT_MIN_WORDS, DEFAULT_N, FIELDS

    p.add_argument("dir", type=Path)
    p.add_argument("--eval", action="append", type=_eval_arg, default=[], metavar="FILE[:FIELD]",
                   help="JSON/JSONL eval file; FIELD is the text field (default: instruction, description, question, ...)")
    p.add_argument("--agentbench", type=Path, default=DEFAULT_AGENTBENCH,
                   help=f"AgentBench data folder (default: $AGENTINSTRUCT_AGENTBENCH or {DEFAULT_AGENTBENCH})")
    p.add_argument("--no-agentbench", action="store_true", help="check only the --eval files")
    p.add_argument("--n", type=int, default=DEFAULT_N, help=f"words per n-gram (default {DEFAULT_N}; open-r1 uses 8)")
    p.add_argument("--min-words", type=int, default=DEFAULT_MIN_WORDS,
                   help="eval instances shorter than n words are matched whole when at least this long")
    p.add_argument("--fields", nargs="+", choices=FIELDS, default=["instruction"],
                   help="record text to check (conversation = every turn)")
    p.add_argument("--workers", type=int, default=2, help="threads for the n-gram scan")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``dedup`` and ``decontaminate`` to the CLI; their options are added when one of them runs (their choices
    and defaults come from modules that import numpy and pyarrow)."""
    p = sub.add_parser("dedup", help="drop exact and near-duplicate instructions/trajectories of a dataset dir",
                       description="Keep the first record of each group of duplicates; the others stay in the all "
                       "config with a reason such as 'near-duplicate: instruction of os_12 (jaccard 0.91)'.",
                       arguments=_dedup_arguments)
    p.set_defaults(func=_dedup)

    p = sub.add_parser("decontaminate", help="drop records whose instruction shares an n-gram with evaluation instances",
                       description="Compare instructions with the AgentBench dev tasks (found at --agentbench) and "
                       "any JSON/JSONL eval files; contaminated records stay in the all config with the matching eval id.",
                       arguments=_decontaminate_arguments)
    p.set_defaults(func=_decontaminate)
