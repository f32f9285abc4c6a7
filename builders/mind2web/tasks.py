"""Mind2Web's released task files, read unchanged and checked, and their action steps.

Mind2Web ships JSON lists of tasks (``data/train/train_*.json``; its evaluation sets ``test_task_*``,
``test_website_*`` and ``test_domain_*``), each ``{annotation_id, website, domain, subdomain, confirmed_task,
action_reprs, actions}``; an action is ``{action_uid, raw_html, cleaned_html, operation {op, original_op, value},
pos_candidates, neg_candidates}`` and a candidate ``{tag, attributes (a JSON string), backend_node_id,
is_original_target, is_top_level_target}``. The same rows come from the Hub (``datasets.load_dataset``). AgentBench
poses each action on its own, given the gold actions before it (``action_reprs[:i]``), so a task becomes one step
per action. Files may be gzipped (``.json.gz``); extra fields are ignored.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentinstruct.builders.taskfile import TaskFileError

OPERATIONS = ("CLICK", "TYPE", "SELECT")
"""The operations AgentBench scores (Mind2Web's ``op``; HOVER and ENTER are recorded as CLICK there)."""
EVAL_PREFIX = "test"
"""Mind2Web's evaluation files (cross-task, cross-website, cross-domain) are named ``test_*``."""

_TASK_FIELDS = {"annotation_id": str, "website": str, "domain": str, "subdomain": str, "confirmed_task": str,
                "action_reprs": list, "actions": list}
_ACTION_FIELDS = {"action_uid": str, "cleaned_html": str, "operation": dict, "pos_candidates": list,
                  "neg_candidates": list}
_CANDIDATE_FIELDS = {"tag": str, "attributes": str, "backend_node_id": str}
_NUMBER = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Step:
    """One action of one task, as AgentBench poses it: the page, the gold operation, the candidates, and the gold
    actions before it."""

    where: str
    """Where it came from, for errors: ``file: task N (annotation_id X): actions[i]``."""
    annotation_id: str
    action_uid: str
    action_index: int
    website: str
    domain: str
    subdomain: str
    task: str
    previous_actions: list[str]
    op: str
    value: str
    cleaned_html: str
    positives: list[str]
    negatives: list[str]


def is_eval_file(path: Path | str) -> bool:
    """Whether a file is one of Mind2Web's evaluation sets, by its name.

    >>> is_eval_file("data/test_website/test_website_0.json"), is_eval_file("data/train/train_3.json.gz")
    (True, False)
    """
    return Path(path).name.startswith(EVAL_PREFIX)


def _natural(path: Path) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in _NUMBER.split(str(path))]


def task_files(folder: Path) -> list[Path]:
    """The Mind2Web task files in ``folder`` and below (``*.json``, ``*.json.gz``), ``train_2`` before ``train_10``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for name in ("train_10.json", "train_2.json.gz", "notes.txt"): _ = (d / name).write_text("[]")
    >>> [p.name for p in task_files(d)]
    ['train_2.json.gz', 'train_10.json']
    """
    found = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz"))]
    return sorted(found, key=_natural)


def read_file(path: Path) -> list[Any]:
    """The tasks of one Mind2Web file: a JSON list (one task object is taken as a list of one), gzipped or not.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "train_0.json.gz"
    >>> _ = p.write_bytes(gzip.compress(b'[{"annotation_id": "a"}]'))
    >>> read_file(p)
    [{'annotation_id': 'a'}]
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise TaskFileError(path, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise TaskFileError(path, f"not valid JSON ({exc})", line=exc.lineno) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise TaskFileError(path, f"expected a JSON list of Mind2Web tasks, found {type(data).__name__}")
    return data


def _check_fields(item: Any, fields: dict[str, type], fail: Any, prefix: str) -> None:
    if not isinstance(item, dict):
        fail(prefix.rstrip(".") or None, f"expected an object, found {type(item).__name__}")
    for name, kind in fields.items():
        if name not in item:
            fail(prefix + name, "missing")
        if not isinstance(item[name], kind):
            fail(prefix + name, f"expected {kind.__name__}, found {type(item[name]).__name__}")


def task_steps(task: Any, path: Path | str, index: int) -> list[Step]:
    """The steps of one task (the ``index``-th of ``path``), after checking every field a step uses; a bad field is
    a ``TaskFileError`` naming the file, the task (index and annotation_id), the action and the field.

    >>> cand = {"tag": "button", "attributes": "{}", "backend_node_id": "7"}
    >>> action = {"action_uid": "u1", "cleaned_html": "<html/>", "operation": {"op": "CLICK", "value": ""},
    ...           "pos_candidates": [cand], "neg_candidates": []}
    >>> task = {"annotation_id": "a1", "website": "w", "domain": "d", "subdomain": "s", "confirmed_task": "Go",
    ...         "action_reprs": ["[button]  Go -> CLICK"], "actions": [action]}
    >>> [(s.annotation_id, s.action_uid, s.op, s.positives) for s in task_steps(task, "train_0.json", 0)]
    [('a1', 'u1', 'CLICK', ['7'])]
    >>> action["operation"]["op"] = "HOVER"
    >>> task_steps(task, "train_0.json", 0)
    Traceback (most recent call last):
    ...
    agentinstruct.builders.taskfile.TaskFileError: train_0.json: task 0: actions[0].operation.op: 'HOVER' is not one of CLICK, TYPE, SELECT (annotation_id a1)
    """
    annotation = task.get("annotation_id") if isinstance(task, dict) else None
    named = f" (annotation_id {annotation})" if isinstance(annotation, str) else ""

    def fail(field: str | None, problem: str) -> None:
        raise TaskFileError(path, problem + named, index=index, field=field)

    _check_fields(task, _TASK_FIELDS, fail, "")
    actions, reprs = task["actions"], task["action_reprs"]
    if len(reprs) != len(actions):
        fail("action_reprs", f"{len(reprs)} entries for {len(actions)} actions")
    steps = []
    for i, action in enumerate(actions):
        at = f"actions[{i}]."
        _check_fields(action, _ACTION_FIELDS, fail, at)
        operation = action["operation"]
        op, value = operation.get("op"), operation.get("value", "")
        if op not in OPERATIONS:
            fail(at + "operation.op", f"{op!r} is not one of {', '.join(OPERATIONS)}")
        if not isinstance(value, str):
            fail(at + "operation.value", f"expected str, found {type(value).__name__}")
        ids: dict[str, list[str]] = {}
        for kind in ("pos_candidates", "neg_candidates"):
            for j, candidate in enumerate(action[kind]):
                _check_fields(candidate, _CANDIDATE_FIELDS, fail, f"{at}{kind}[{j}].")
            ids[kind] = [c["backend_node_id"] for c in action[kind]]
        if not isinstance(reprs[i], str):
            fail(f"action_reprs[{i}]", f"expected str, found {type(reprs[i]).__name__}")
        steps.append(Step(
            where=f"{path}: task {index}{named}: actions[{i}]", annotation_id=task["annotation_id"],
            action_uid=action["action_uid"], action_index=i, website=task["website"], domain=task["domain"],
            subdomain=task["subdomain"], task=task["confirmed_task"], previous_actions=list(reprs[:i]), op=op,
            value=value, cleaned_html=action["cleaned_html"], positives=ids["pos_candidates"],
            negatives=ids["neg_candidates"]))
    return steps
