"""An evaluation's results in a Hub model card, as ``model-index`` metadata the Hub renders as a results table.

The metadata is built with huggingface_hub's ``ModelCard`` and ``EvalResult`` objects, never written as YAML by
hand. A result replaces an earlier one of the same benchmark and metric; the card's other results and its text
stay. Values are what the paper prints: rates and F1 x100, scores as they are.
"""

from __future__ import annotations

from typing import Any

from agentinstruct.evaluation.results import TITLES, EvalRun, Result

SOURCE = "agentinstruct evaluate"


def eval_result(result: Result) -> Any:
    """One result as a ``huggingface_hub.EvalResult``.

    Example:
        >>> from agentinstruct.evaluation.results import rate_result
        >>> r = eval_result(rate_result("os", "held-in", "success", [True, False], settings={"tasks": "embedded-eval"}))
        >>> r.dataset_type, r.dataset_split, r.metric_type, r.metric_value, r.metric_name
        ('agentinstruct/os', 'embedded-eval', 'success', 50.0, 'OS success (95% CI 9.5-90.5, n=2)')
    """
    from huggingface_hub import EvalResult

    title = TITLES.get(result.benchmark, result.benchmark)
    if result.kind == "held-in":
        dataset_type, dataset_name = f"agentinstruct/{result.benchmark}", f"{title} (AgentBench held-in)"
        split = str(result.settings.get("tasks", "")) or None
    else:
        dataset_type = str(result.settings.get("dataset") or result.benchmark)
        dataset_name, split = title, result.settings.get("split")
    value = round(float(result.shown()), 2)
    return EvalResult(
        task_type="text-generation", task_name=title, dataset_type=dataset_type, dataset_name=dataset_name,
        dataset_split=split, metric_type=result.metric, metric_value=value,
        metric_name=f"{title} {result.metric} (95% CI {result.shown(result.ci_low)}-{result.shown(result.ci_high)}, "
                    f"n={result.n}{f', {result.errors} errored' if result.errors else ''})",
    )


def card_with_results(card: str, run: EvalRun, model_name: str) -> str:
    """``card`` (a README.md, maybe empty) with ``run``'s results in its ``model-index``.

    Example:
        >>> from agentinstruct.evaluation.results import mean_result
        >>> run = EvalRun("m", None, (mean_result("kg", "held-in", "f1", [1.0, 0.0]),))
        >>> text = card_with_results("---\\nlicense: apache-2.0\\n---\\n# AgentLM\\n", run, "org/AgentLM")
        >>> "model-index:" in text and "type: agentinstruct/kg" in text and text.endswith("# AgentLM\\n")
        True
        >>> card_with_results(text, run, "org/AgentLM") == text
        True
    """
    from huggingface_hub import ModelCard

    parsed = ModelCard(card) if card.strip() else ModelCard("---\n---\n")
    new = [eval_result(r) for r in run.results]
    keys = {(e.dataset_type, e.metric_type) for e in new}
    kept = [e for e in (parsed.data.eval_results or []) if (e.dataset_type, e.metric_type) not in keys]
    parsed.data.eval_results = kept + new
    parsed.data.model_name = parsed.data.model_name or model_name
    return str(parsed)


def push_results(run: EvalRun, repo_id: str, *, dry_run: bool = False) -> Any:
    """Write ``run``'s results into the model card of the Hub repo ``repo_id`` in one commit (``hub.publish_model_card``).

    Example (needs a Hub server; tests/test_evaluate.py pushes to a local one):
        >>> push_results(read_results(Path("eval-out")), "org/AgentLM-7B").status  # doctest: +SKIP
        'published'
    """
    from agentinstruct.hub import publish_model_card

    names = ", ".join(TITLES.get(r.benchmark, r.benchmark) for r in run.results)
    return publish_model_card(repo_id, lambda card: card_with_results(card, run, repo_id.split("/")[-1]),
                              message=f"Evaluation results ({names}) from {SOURCE}", dry_run=dry_run)
