"""`agentinstruct --help` and `validate` on a JSONL file load none of the heavy libraries (the speed is measured by
benchmarks/bench_cli_startup.py); the deferred options of dedup/decontaminate still parse and show in their help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from factory import record

from agentinstruct.cli import main

HEAVY = ("openai", "datasets", "torch", "transformers", "trl", "huggingface_hub", "pyarrow", "numpy")
PROBE = """import json, sys
from agentinstruct.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, sorted(m for m in {heavy!r} if m in sys.modules)]), file=sys.stderr)
"""


def loaded(args: list[str]) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter: its exit code and the heavy libraries it imported."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True,
                          check=True)
    code, modules = json.loads(done.stderr.strip().splitlines()[-1])
    return code, modules


def test_help_and_validate_import_no_heavy_library(tmp_path):
    assert loaded(["--help"]) == (0, [])
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(record(i)) + "\n" for i in range(3)), encoding="utf-8")
    assert loaded(["validate", str(small)]) == (0, [])


def test_deferred_options_parse_and_show_in_help(tmp_path, capsys):
    # Options added on first use: a bad choice is still refused by argparse, and --help lists them.
    for argv in (["dedup", str(tmp_path), "--scope", "galaxy"], ["decontaminate", str(tmp_path), "--fields", "x"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["decontaminate", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "--min-words" in out and "words per n-gram (default 13" in out
