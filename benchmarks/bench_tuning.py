"""The paper's experiment at smoke scale: SmolLM2-135M-Instruct before and after SFT on an eta = 0.2 mixture of this
package's own kept trajectories with ShareGPT, evaluated in all six environments and on a general benchmark.

Every stage is the command a user runs (README: "Training AgentLM", "Evaluating a checkpoint"), as a subprocess:

1. data: ``agentinstruct demo --out WORK/data``, the six splits built from their embedded training sources
   (``--data DIR`` takes an existing dataset dir instead);
2. mixture: ``agentinstruct mix --agent WORK/data --eta 0.2 --samples N --seed 0 --no-oversample``, ShareGPT as the
   general part: every row at most once, round(0.2 * N) of them agent rows (N shrinks only when the data holds
   fewer than 0.2 * N agent rows);
3. training: ``python -m agentinstruct.training.sft --config training/recipes/smollm2-135m-cpu.yaml`` on it;
4. base: the same starting weights as a plain checkpoint (``training.base.plain_checkpoint`` of the embedded GGUF),
   so both models are served the same way: ``evaluate`` serves a checkpoint dir that comes from a GGUF with
   llama.cpp, through a GGUF export of its weights (``evaluation.gguf_export``);
5. ``agentinstruct evaluate`` on the base and on the tuned checkpoint: each split's embedded evaluation part (no
   training task; ``--train WORK/data`` flags any that shares text with the training data), its first ``--limit``
   tasks, and MMLU on the package's offline MMLU-style file through lm-eval's ``hf`` backend;
6. ``agentinstruct evaluate --compare base tuned``.

Printed: per split the paper's metric and the error analysis' two elementary mistakes (share of episodes with a
format error, with an action repeated right after itself) before and after, each with its 95% interval (Wilson's
for rates, the bootstrap for mean rewards, as ``evaluate`` computes them), the general score, whether each change
is within noise, and each stage's wall time. Whatever comes out is reported; at 20 tasks an interval spans about
+-20 points, so only a large change is more than noise. One run on 2 quiet cores (AMD EPYC, AVX2) took 38 minutes,
plus about a minute on a fresh machine to convert and export the base once (README, "Evaluating a checkpoint")::

    .venv/bin/python benchmarks/bench_tuning.py [--work DIR] [--limit 20] [--max-turns 2] [--max-tokens 64]
                                                [--samples 64] [--steps 15] [--json OUT]

``--work`` keeps every stage's output (default: a temporary dir); a stage whose output is there is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RECIPE = ROOT / "training" / "recipes" / "smollm2-135m-cpu.yaml"
GENERAL_DATA = ROOT / "agentinstruct" / "evaluation" / "data" / "general"
MISTAKES = (("format_error_rate", "format error"), ("repeated_action_rate", "repeated action"))


def _run(stage: str, command: list[str], timings: dict[str, float], done: Path) -> None:
    """Run one stage's command unless ``done`` exists (a kept work dir), timing it; its output streams through."""
    if done.exists():
        print(f"[{stage}] kept from an earlier run: {done}", flush=True)
        return
    print(f"[{stage}] {' '.join(command)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    timings[stage] = time.perf_counter() - start
    # evaluate exits 3 when episodes still errored after its retries: they are counted as failures and shown
    if result.returncode not in (0, 3) or not done.exists():
        raise SystemExit(f"[{stage}] failed (exit {result.returncode}); its output is above")
    print(f"[{stage}] {timings[stage]:.0f} s", flush=True)


def _base_checkpoint() -> Path:
    """The base model's weights as a plain checkpoint dir: what SFT starts from, de-quantized from the GGUF."""
    sys.path.insert(0, str(ROOT))
    from agentinstruct.training.base import EMBEDDED_GGUF, plain_checkpoint

    return plain_checkpoint(EMBEDDED_GGUF)


def _evaluate(model: Path, name: str, out: Path, args: argparse.Namespace, data: Path) -> list[str]:
    from agentinstruct.evaluation.heldin import SPECS

    return [str(BIN / "agentinstruct"), "evaluate", "--model", str(model), "--name", name, "--out", str(out),
            "--splits", *SPECS, "--limit", str(args.limit), "--max-turns", str(args.max_turns),
            "--max-tokens", str(args.max_tokens),
            # ALFWorld goals repeat across rooms ("put a clean cloth in drawer"): a held-out game may share its goal
            # text with a training game; those run, flagged in results.json's settings.train_overlap.
            "--concurrency", str(args.concurrency), "--train", str(data), "--allow-overlap",
            "--general", "mmlu", "--general-data", str(GENERAL_DATA)]


def _cell(value: float, low: float, high: float) -> str:
    return f"{100 * value:5.1f} [{100 * low:5.1f}, {100 * high:5.1f}]"


def _mistake(result: Any, key: str) -> tuple[float, float, float]:
    """An error-analysis share of a split's scored episodes with its Wilson interval."""
    from agentinstruct.evaluation.results import wilson_interval

    scored = int(result.details["scored"])
    share = result.details[key]
    return (share, *wilson_interval(round(share * scored), scored))


def report(base_dir: Path, tuned_dir: Path) -> dict[str, Any]:
    """Print the before/after table of two ``evaluate`` result dirs and return its figures."""
    from agentinstruct.evaluation.results import compare_runs, read_results

    base, tuned = read_results(base_dir / "results.json"), read_results(tuned_dir / "results.json")
    verdicts = {d.benchmark: d for d in compare_runs(base, tuned)}
    before = {r.benchmark: r for r in base.results}
    rows: dict[str, Any] = {}
    print(f"\n{'benchmark':<10} {'measure':<20} {'base':>22}   {'tuned':>22}   change")
    for after in tuned.results:
        first = before[after.benchmark]
        verdict = verdicts[after.benchmark]
        row = {"metric": after.metric, "n": after.n, "base": [first.value, first.ci_low, first.ci_high],
               "tuned": [after.value, after.ci_low, after.ci_high], "verdict": verdict.verdict,
               "errors": [first.errors, after.errors]}
        print(f"{after.benchmark:<10} {after.metric:<20} {_cell(first.value, first.ci_low, first.ci_high)}   "
              f"{_cell(after.value, after.ci_low, after.ci_high)}   {verdict.verdict}")
        if after.kind == "held-in":
            for key, label in MISTAKES:
                b, t = _mistake(first, key), _mistake(after, key)
                apart = b[1] > t[2] or t[1] > b[2]
                row[key] = {"base": list(b), "tuned": list(t), "apart": apart}
                print(f"{'':<10} {label:<20} {_cell(*b)}   {_cell(*t)}   "
                      f"{'intervals apart' if apart else 'within noise'}")
            row["mean_turns"] = [first.details["mean_turns"], after.details["mean_turns"]]
        rows[after.benchmark] = row
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, help="keep every stage's output here (default: a temporary dir)")
    p.add_argument("--data", type=Path, help="an existing dataset dir of trajectories instead of a demo build")
    p.add_argument("--limit", type=int, default=20, help="evaluation tasks per split and MMLU questions (default 20)")
    p.add_argument("--max-turns", type=int, default=2, help="agent turns per evaluation episode (default 2)")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens per reply (default 64)")
    p.add_argument("--concurrency", type=int, default=8, help="evaluation episodes at once (default 8)")
    p.add_argument("--samples", type=int, default=64, help="examples in the mixture (default 64)")
    p.add_argument("--steps", type=int, default=15, help="SFT steps (default 15, the recipe's)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()

    data = args.data or work / "data"
    if not args.data:
        _run("data", [str(BIN / "agentinstruct"), "demo", "--out", str(data)], timings, data / "manifest.json")
    mix = work / "mix"
    # --no-oversample: exactly round(0.2 * samples) agent rows when the data has them. A per-example draw at 64
    # samples gives 7 to 19 agent rows for 95% of seeds (seed 0 drew 6): the dose of agent data would be as noisy as
    # the outcome it is to explain.
    _run("mix", [str(BIN / "agentinstruct"), "mix", "--agent", str(data), "--eta", "0.2", "--samples",
                 str(args.samples), "--seed", "0", "--no-oversample", "--out", str(mix)], timings,
         mix / "mixture.json")
    tuned = work / "tuned"
    _run("train", [sys.executable, "-m", "agentinstruct.training.sft", "--config", str(RECIPE), "--dataset_name",
                   str(mix), "--output_dir", str(tuned), "--max_steps", str(args.steps)], timings,
         tuned / "config.json")
    start = time.perf_counter()
    base = _base_checkpoint()
    timings.setdefault("base checkpoint", time.perf_counter() - start)
    for name, model in (("base", base), ("tuned", tuned)):
        out = work / f"eval-{name}"
        _run(f"evaluate {name}", _evaluate(model, name, out, args, data), timings, out / "results.json")
    _run("compare", [str(BIN / "agentinstruct"), "evaluate", "--compare", str(work / "eval-base"),
                     str(work / "eval-tuned"), "--out", str(work / "compare")], timings,
         work / "compare" / "comparison.md")

    print(f"\nSmolLM2-135M-Instruct before and after SFT ({args.steps} steps on {args.samples} examples, eta 0.2); "
          f"{args.limit} tasks per split, at most {args.max_turns} turns of {args.max_tokens} tokens, greedy; "
          "95% intervals")
    rows = report(work / "eval-base", work / "eval-tuned")
    total = time.perf_counter() - started
    print("\nwall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {total:.0f} s")
    print(f"outputs in {work}")
    if args.json:
        keys = ("limit", "max_turns", "max_tokens", "concurrency", "samples", "steps")
        settings = {k: getattr(args, k) for k in keys}
        args.json.write_text(json.dumps({"settings": settings, "results": rows, "seconds": timings}, indent=1) + "\n")


if __name__ == "__main__":
    main()
