"""Gold action lists: the scripted tasks the recorder runs in a browser to make Mind2Web-format tasks.

A gold file (JSON) names the website as Mind2Web's tasks do and lists tasks, each a start page and the actions a
person would take, one per step::

    {"website": "skyhop", "domain": "Travel", "subdomain": "Airlines",
     "tasks": [{"confirmed_task": "Find a one-way flight from Boston to Denver",
                "start": "/index.html",
                "actions": [{"op": "TYPE", "selector": "#from", "value": "Boston"},
                            {"op": "CLICK", "selector": "#search"}]}]}

``op`` is Mind2Web's original operation: CLICK, TYPE, SELECT, or HOVER and ENTER, which Mind2Web's ``op`` maps to
CLICK. ``selector`` is a Playwright selector (CSS, ``text=...``, ``>> nth=0``) that must match exactly one element
when the step is reached; ``value`` is the text typed or the option chosen (its label), and empty for the others.
A task may override ``website``, ``domain`` and ``subdomain``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPERATIONS: dict[str, str] = {"CLICK": "CLICK", "TYPE": "TYPE", "SELECT": "SELECT", "HOVER": "CLICK",
                              "ENTER": "CLICK"}
"""Original operation -> Mind2Web's ``op`` (HOVER and ENTER count as CLICK, as in the released data)."""

_NEEDS_VALUE = ("TYPE", "SELECT")


@dataclass(frozen=True)
class GoldAction:
    """One step: the original operation, the element's selector and the value typed or chosen."""

    op: str
    selector: str
    value: str = ""


@dataclass(frozen=True)
class GoldTask:
    """One task: its text, where it is, the page it starts on and its steps."""

    confirmed_task: str
    website: str
    domain: str
    subdomain: str
    start: str
    actions: tuple[GoldAction, ...]


def _text(where: str, entry: dict[str, Any], key: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {value!r}")
    return value


def parse_gold(data: Any, source: str = "<gold>") -> list[GoldTask]:
    """The tasks of a gold file's content; errors name the source, the task, the action and the field.

    Example:
        >>> tasks = parse_gold({"website": "w", "domain": "Travel", "subdomain": "Airlines", "tasks": [
        ...     {"confirmed_task": "Go", "start": "/", "actions": [{"op": "ENTER", "selector": "#q"}]}]})
        >>> tasks[0].actions
        (GoldAction(op='ENTER', selector='#q', value=''),)
        >>> parse_gold({"website": "w", "domain": "d", "subdomain": "s", "tasks": [
        ...     {"confirmed_task": "Go", "start": "/", "actions": [{"op": "TYPE", "selector": "#q"}]}]}, "g.json")
        Traceback (most recent call last):
        ...
        ValueError: g.json: task 0 ('Go'), action 0: field 'value' must be a non-empty string, got None
    """
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not data["tasks"]:
        raise ValueError(f"{source}: a gold file is an object with a non-empty 'tasks' list")
    tasks = []
    for i, entry in enumerate(data["tasks"]):
        where = f"{source}: task {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: a task is an object, got {type(entry).__name__}")
        name = _text(where, entry, "confirmed_task")
        where = f"{where} ({name!r})"
        site = {key: _text(where, entry, key, data.get(key)) for key in ("website", "domain", "subdomain")}
        steps = entry.get("actions")
        if not isinstance(steps, list) or not steps:
            raise ValueError(f"{where}: field 'actions' must be a non-empty list")
        actions = []
        for j, step in enumerate(steps):
            at = f"{where}, action {j}"
            if not isinstance(step, dict):
                raise ValueError(f"{at}: an action is an object, got {type(step).__name__}")
            op = _text(at, step, "op")
            if op not in OPERATIONS:
                raise ValueError(f"{at}: field 'op' must be one of {', '.join(OPERATIONS)}, got {op!r}")
            value = _text(at, step, "value") if op in _NEEDS_VALUE else _text(at, step, "value", "")
            actions.append(GoldAction(op, _text(at, step, "selector"), value))
        tasks.append(GoldTask(name, site["website"], site["domain"], site["subdomain"],
                              _text(where, entry, "start"), tuple(actions)))
    return tasks


def read_gold(path: Path) -> list[GoldTask]:
    """The tasks of the gold file at ``path``.

    Example:
        >>> from agentinstruct.builders.mind2web.sites import HERE
        >>> read_gold(HERE / "flights" / "train.json")[0].website
        'skyhop'
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    return parse_gold(data, str(path))
