"""``agentinstruct evaluate``: score a model on the held-in splits and general benchmarks, or compare runs.

    agentinstruct evaluate --model M --base-url URL --out DIR                 # the six held-in splits
    agentinstruct evaluate --model runs/agentlm/final --out DIR --general mmlu gsm8k
    agentinstruct evaluate --compare base/ tuned/ --out cmp/                 # tuned against base, noise marked

Results go to ``DIR/results.json`` and ``DIR/results.md`` (``agentinstruct.evaluation.results``), per-task
records beside them (``DIR/eval-SPLIT.jsonl``, the journal that makes a rerun resume), and with ``--push
ORG/MODEL`` into that model card's ``model-index``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PARTIAL = 3
"""Exit status when episodes still errored after the retries: they are counted as failures in the figures."""


def _arguments(p: argparse.ArgumentParser) -> None:
    from agentinstruct.collection.agentargs import add_model_options
    from agentinstruct.evaluation.heldin import DEFAULT_RETRIES, SPECS

    add_model_options(p, required=False)
    for action in p._actions:
        if "--model" in action.option_strings:
            action.help = ("the model: a name on --base-url's server, 'local' (SmolLM2-135M-Instruct on a local "
                           "llama.cpp server), or a checkpoint dir (served here with `transformers serve`)")
    # Evaluation is greedy unless asked otherwise, so that a rerun on the same weights gives the same figures.
    p.set_defaults(temperature=0.0)
    p.add_argument("--out", type=Path, metavar="DIR", help="where results.json, results.md and per-task records go")
    p.add_argument("--name", help="the run's label in tables and plots (default: the model)")
    h = p.add_argument_group("held-in splits")
    h.add_argument("--splits", nargs="+", choices=list(SPECS), metavar="SPLIT",
                   help=f"splits to evaluate (default: all of {', '.join(SPECS)}, or none when only --general is given)")
    h.add_argument("--tasks", action="append", default=[], metavar="SPLIT=SRC",
                   help="a split's tasks instead of its embedded evaluation part, e.g. os=dev.json (repeatable)")
    h.add_argument("--builder", action="append", default=[], metavar="SPLIT=MODULE:CLASS",
                   help="another Builder class for a split (repeatable)")
    h.add_argument("--train", action="append", type=Path, default=[], metavar="DIR",
                   help="training data (a dataset dir or record file) the evaluation tasks must not be in; an "
                   "overlap is refused (repeatable)")
    h.add_argument("--allow-overlap", action="store_true",
                   help="with --train: evaluate overlapping tasks anyway and flag them in results.json")
    h.add_argument("--limit", type=int, metavar="N", help="only the first N tasks of each split (and items of each "
                   "general benchmark)")
    h.add_argument("--max-turns", type=int, metavar="N",
                   help="cap each episode at N agent turns (default: each split's own limit, AgentBench's; a cap "
                   "never raises it); recorded in each split's settings")
    h.add_argument("--concurrency", type=int, default=4, metavar="N", help="episodes at once (default 4)")
    h.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                   help=f"reruns of errored episodes before they count as failures (default {DEFAULT_RETRIES})")
    g = p.add_argument_group("general benchmarks (lm-eval-harness)")
    g.add_argument("--general", nargs="+", metavar="NAME", default=[],
                   help="mmlu, gsm8k, humaneval (opt-in), or any lm-eval task name")
    g.add_argument("--checkpoint", metavar="PATH|ID",
                   help="the served model's weights (dir, Hub id or GGUF) for log-likelihood benchmarks such as "
                   "MMLU (default: the --model dir, or the GGUF of --model local)")
    g.add_argument("--general-data", type=Path, metavar="DIR",
                   help="local files in the benchmarks' formats instead of their Hub datasets (offline)")
    g.add_argument("--general-tasks", type=Path, metavar="DIR", help="your own lm-eval task YAMLs")
    g.add_argument("--allow-code-eval", action="store_true", help="allow benchmarks that execute model code")
    g.add_argument("--judge-model", help="the judge for MT-Bench")
    r = p.add_argument_group("results")
    r.add_argument("--compare", nargs="+", type=Path, metavar="RUN",
                   help="result dirs to compare, the base first; with --model, this run is compared last")
    r.add_argument("--push", metavar="ORG/MODEL", help="write the results into this Hub model card's model-index")


def _checkpoint(args: argparse.Namespace) -> str | None:
    from agentinstruct.collection.localmodel import LOCAL, gguf_path
    from agentinstruct.evaluation.serve import is_checkpoint

    if args.checkpoint:
        return args.checkpoint
    if args.model == LOCAL:
        return str(gguf_path())
    return args.model if is_checkpoint(args.model) else None


def _evaluate_model(args: argparse.Namespace) -> tuple[Path, int]:
    from agentinstruct.collection.agentargs import run_with_agent
    from agentinstruct.evaluation.heldin import SPECS, evaluate_heldin, parse_assignments
    from agentinstruct.evaluation.results import EvalRun, check_owner, write_results
    from agentinstruct.evaluation.serve import endpoint

    splits = args.splits or ([] if args.general else list(SPECS))
    sources, builders = parse_assignments(args.tasks, "--tasks"), parse_assignments(args.builder, "--builder")
    for flag, given in (("--tasks", sources), ("--builder", builders)):
        left = sorted(set(given) - set(splits))
        if left:
            raise ValueError(f"{flag} names split {left[0]}, which is not evaluated (--splits {' '.join(splits)})")
    if args.allow_overlap and not args.train:
        raise ValueError("--allow-overlap needs --train DIR (the training data to check against)")
    if args.max_turns is not None and args.max_turns < 1:  # now, not after a checkpoint server has started
        raise ValueError(f"--max-turns {args.max_turns}: an episode needs at least 1 agent turn")
    check_owner(args.out, args.model, any_revision=True)  # before a server starts: the revision comes from it
    errors = 0
    with endpoint(args.model, args.base_url) as served:
        check_owner(args.out, args.model, served.revision)
        settings = {"served_by": served.served_by, "base_url": served.base_url}
        plans = None
        if args.general:
            from agentinstruct.evaluation.general import plan_general

            # before the long held-in part: a benchmark that cannot be scored as asked stops the run now
            plans = plan_general(args.general, base_url=served.base_url, checkpoint=_checkpoint(args),
                                 data_dir=args.general_data, tasks_dir=args.general_tasks,
                                 allow_code_eval=args.allow_code_eval, judge_model=args.judge_model)

        def save(results: list) -> Path:
            return write_results(args.out, EvalRun(args.model, served.revision, tuple(results), settings,
                                                   name=args.name or ""))

        async def held_in(agent: object) -> int:
            failed = 0
            for split in splits:
                result = await evaluate_heldin(
                    split, agent, args.out, source=sources.get(split), builder=builders.get(split), limit=args.limit,
                    concurrency=args.concurrency, retries=args.retries, train=args.train,
                    allow_overlap=args.allow_overlap, max_turns=args.max_turns)
                save([result])  # each split as it finishes: a later failure keeps the earlier figures
                noted = f" ({result.errors} errored, counted as failures)" if result.errors else ""
                print(f"{split}: {result.metric} {result.shown()} [{result.shown(result.ci_low)}, "
                      f"{result.shown(result.ci_high)}] over {result.n} tasks{noted}")
                failed += result.errors
            return failed

        if splits:
            opts = argparse.Namespace(**{**vars(args), "model": served.model, "base_url": served.base_url})
            errors = run_with_agent(opts, held_in)
        if plans:
            from agentinstruct.evaluation.general import run_general

            general = run_general(served.model, args.general, args.out, base_url=served.base_url,
                                  checkpoint=_checkpoint(args), limit=args.limit, data_dir=args.general_data,
                                  tasks_dir=args.general_tasks, allow_code_eval=args.allow_code_eval,
                                  judge_model=args.judge_model, api_key_env=args.api_key_env)
            save(general)
            for result in general:
                print(f"{result.benchmark}: {result.metric} {result.shown()} [{result.shown(result.ci_low)}, "
                      f"{result.shown(result.ci_high)}] over {result.n} items")
    path = save([])
    return path, errors


def _evaluate(args: argparse.Namespace) -> int:
    from agentinstruct.evaluation.results import TABLE, plot_runs, read_results, render_comparison

    status = 0
    runs = [read_results(p) for p in args.compare or []]
    if args.model:
        if args.out is None:
            raise ValueError("--out DIR is required with --model (results.json and the per-task records go there)")
        path, errors = _evaluate_model(args)
        run = read_results(path)
        runs.append(run)
        plot_runs([run], args.out / "results.png")
        print(f"wrote {path}, {args.out / TABLE} and {args.out / 'results.png'}")
        if errors:
            print(f"{errors} episodes still errored after {args.retries} retries and count as failures; run the "
                  "same command again to retry them", file=sys.stderr)
            status = PARTIAL
        if args.push:
            from agentinstruct.evaluation.modelcard import push_results

            print(push_results(run, args.push).render())
    elif args.push:
        raise ValueError("--push needs a run: give --model (evaluate, then push)")
    if args.compare:
        text = render_comparison(runs)
        print(text)
        if args.out is not None and not args.model:
            from agentinstruct.datasetdir.fileutil import atomic_write_text

            args.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.out / "comparison.md", text)
            plot_runs(runs, args.out / "comparison.png")
            print(f"wrote {args.out / 'comparison.md'} and {args.out / 'comparison.png'}")
    elif not args.model:
        raise ValueError("give --model M (and --out DIR) to evaluate, or --compare RUN ... to compare results")
    return status


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` to the CLI."""
    text = "score a model on the held-in splits (and general benchmarks), or compare evaluation runs"
    p = sub.add_parser("evaluate", help=text, description=f"{text}.", arguments=_arguments)
    p.set_defaults(func=_evaluate)
