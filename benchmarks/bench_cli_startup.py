"""Start-up of the command line: ``agentinstruct --help`` and ``validate`` on a small JSONL file, this tree against
an earlier revision, as a ratio.

Side by side in one run, interleaved, medians of ``--repeat`` rounds, each a fresh Python process. The earlier
revision's ``agentinstruct/`` is unpacked with ``git archive`` into a temporary folder put first on ``sys.path``;
``agentinstruct.builders`` and ``agentinstruct.schemas`` still come from this checkout (the editable install maps
them), which both commands only read a registry and the schema from.

::

    .venv/bin/python benchmarks/bench_cli_startup.py [--base 3a3a2fe] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from factory import record  # noqa: E402  (the tests' record factory: valid records of every field)

RUN = "import sys; sys.path.insert(0, sys.argv[1]); from agentinstruct.cli import main; sys.exit(main(sys.argv[2:]))"


def timed(root: Path, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, str(root), *args], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="3a3a2fe", help="the earlier revision (default: before the lazy imports)")
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.base, "agentinstruct"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        small = Path(tmp) / "small.jsonl"
        small.write_text("".join(json.dumps(record(i)) + "\n" for i in range(3)), encoding="utf-8")
        commands = {"--help": ["--help"], "validate 3 records": ["validate", str(small)]}
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                for label, root in ((args.base, old), ("this tree", REPO)):
                    times.setdefault((name, label), []).append(timed(root, argv))
    print(f"median of {args.repeat} fresh processes each ({sys.executable})")
    for name in commands:
        before, after = (statistics.median(times[(name, label)]) for label in (args.base, "this tree"))
        print(f"  agentinstruct {name:<20} {args.base}: {before:6.3f} s   this tree: {after:6.3f} s   "
              f"{before / after:5.1f}x faster")


if __name__ == "__main__":
    main()
