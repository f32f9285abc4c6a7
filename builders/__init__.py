"""One module per AgentInstruct split: task sources, environment, prompt, action parser, reward and bar."""

from __future__ import annotations

import importlib

# split -> "module:Class" of its Builder (agentinstruct.builders.base.Builder). One line per split.
BUILDERS: dict[str, str] = {
    "os": "agentinstruct.builders.os.builder:OsBuilder",
    "db": "agentinstruct.builders.db.builder:DbBuilder",
    "kg": "agentinstruct.builders.kg.builder:KgBuilder",
    "alfworld": "agentinstruct.builders.alfworld.builder:AlfworldBuilder",
    "webshop": "agentinstruct.builders.webshop.builder:WebshopBuilder",
    "mind2web": "agentinstruct.builders.mind2web.builder:Mind2webBuilder",
}


def builder_class(split: str, spec: str | None = None) -> type:
    """The Builder class for ``split``: from ``spec`` ("module:Class", e.g. ``--builder``) or the registry.

    Example:
        >>> builder_class("os")
        <class 'agentinstruct.builders.os.builder.OsBuilder'>
        >>> builder_class("os", "agentinstruct.builders.kg.builder:KgBuilder")
        Traceback (most recent call last):
        ...
        ValueError: builder 'agentinstruct.builders.kg.builder:KgBuilder' makes split 'kg', not 'os'
    """
    spec = spec or BUILDERS.get(split)
    if spec is None:
        raise ValueError(f"no builder for split {split!r} yet (registered: {', '.join(BUILDERS) or 'none'})")
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the builder exists but one of its own imports is missing: show the real error
        raise ValueError(f"the {split} builder {spec!r} is not available: no module {exc.name!r}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"the {split} builder {spec!r} is not available: {module_name} has no {class_name!r}")
    if getattr(cls, "split", None) != split:
        raise ValueError(f"builder {spec!r} makes split {getattr(cls, 'split', None)!r}, not {split!r}")
    return cls
