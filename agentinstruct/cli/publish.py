"""``agentinstruct publish``: a dataset dir as a versioned Hub release (one commit, immutable tag, verified)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _publish(args: argparse.Namespace) -> int:
    from agentinstruct.hub import publish_dataset  # here, not at the top: `agentinstruct --help` stays quick

    result = publish_dataset(args.dir, args.repo, args.version, private=args.private, dry_run=args.dry_run,
                             message=args.message)
    print(result.render())
    if result.status != "dry-run" and result.changes:
        print(f'load it: datasets.load_dataset("{args.repo}", split=..., revision="{result.tag}")')
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``publish`` to the CLI."""
    p = sub.add_parser(
        "publish",
        help="validate a dataset dir and push it to the Hub as release vX.Y.Z (one commit + tag, verified)",
        description="Validate DIR, push Parquet, card, schema, manifest and plots to the dataset repo in one commit, "
        "tag it vX.Y.Z and check the tag's files against the manifest. A version never changes: the same version "
        "with other files is refused, with the same files it is a no-op. The token comes from HF_TOKEN or "
        "`hf auth login` and is never printed.",
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="dataset repo id on the Hub")
    p.add_argument("--version", required=True, metavar="X.Y.Z", help="release version; the tag is vX.Y.Z")
    p.add_argument("--private", action="store_true", help="create the repo private (when it does not exist yet)")
    p.add_argument("--dry-run", action="store_true", help="print the files that would be added, changed, deleted")
    p.add_argument("--message", help="commit message (default: Release vX.Y.Z)")
    p.set_defaults(func=_publish)
