"""The model options of the command line (``--model``, ``--base-url``, ...) and the agent they describe.

``build``, ``eval`` and ``self-instruct`` (and ``build --tasks self-instruct`` inside a split's builder) add the
options with ``add_model_options`` and run their work with ``run_with_agent``, which starts what the options name
(a local llama.cpp server for ``--model local``), opens an ``AgentClient`` on it and closes both afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import TypeVar

from agentinstruct.collection.agent import AgentClient, AgentRejected, Prices
from agentinstruct.collection.localmodel import LOCAL, LocalServerError, local_server

T = TypeVar("T")


class ModelUnusable(ValueError):
    """The server refused the model (bad key, unknown model) or the local model server did not start.

    A ValueError, so the command line prints its message and exits 2, with no traceback.
    """


def add_model_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """Add the model options (server, key variable, sampling, timeouts, retries, prices) to ``parser``.

    Example:
        >>> p = argparse.ArgumentParser(); add_model_options(p, required=True)
        >>> p.parse_args(["--model", "gpt-4o-mini"]).max_tokens
        512
    """
    g = parser.add_argument_group("model (any OpenAI-compatible server)")
    g.add_argument("--model", required=required,
                   help=f"model name; '{LOCAL}' starts SmolLM2-135M-Instruct on a local llama.cpp server"
                   + ("" if required else " (omit with --policy reference for template thoughts)"))
    g.add_argument("--base-url", help="server URL, e.g. http://127.0.0.1:8000/v1 (default: the OpenAI API)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="NAME",
                   help="environment variable holding the key (default OPENAI_API_KEY; a local server needs none)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--max-tokens", type=int, default=512, help="per reply (default 512)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    g.add_argument("--max-retries", type=int, default=6,
                   help="retries of a request on 429/5xx/connection errors/timeouts (default 6)")
    g.add_argument("--price-prompt", type=float, help="USD per 1k prompt tokens, for cost_usd in the records")
    g.add_argument("--price-completion", type=float, help="USD per 1k completion tokens")


def _endpoint(opts: argparse.Namespace, stack: ExitStack) -> tuple[str, str | None]:
    if opts.model != LOCAL:
        return opts.model, opts.base_url
    if opts.base_url:
        raise ValueError(f"--model {LOCAL} starts its own server; leave out --base-url")
    print("starting the local model server (SmolLM2-135M-Instruct, llama.cpp) ...", file=sys.stderr)
    base_url, model = stack.enter_context(local_server())
    return model, base_url


def _agent(opts: argparse.Namespace, model: str, base_url: str | None) -> AgentClient:
    return AgentClient(
        model, base_url=base_url, api_key_env=opts.api_key_env, temperature=opts.temperature, top_p=opts.top_p,
        max_tokens=opts.max_tokens, seed=getattr(opts, "seed", None), timeout=opts.timeout,
        max_retries=opts.max_retries, prices=Prices(opts.price_prompt, opts.price_completion),
    )


def run_with_agent(opts: argparse.Namespace, work: Callable[[AgentClient | None], Awaitable[T]]) -> T:
    """Run ``work(agent)`` to its end with the agent the parsed model options describe, then close the agent and
    stop the local server if one was started. ``agent`` is None when ``opts.model`` is unset.

    A refused model or a local server that fails raises ``ModelUnusable``.

    Example (needs the local llama.cpp model, which ``--model local`` serves):
        >>> async def hello(agent):  # doctest: +SKIP
        ...     return (await agent.chat([{"role": "user", "content": "hi"}])).text
        >>> run_with_agent(parser.parse_args(["--model", "local"]), hello)  # doctest: +SKIP
        'Hello! How can I help you today?'
    """
    async def go(model: str | None, base_url: str | None) -> T:
        if model is None:
            return await work(None)
        async with _agent(opts, model, base_url) as agent:
            return await work(agent)

    try:
        with ExitStack() as stack:
            model, base_url = _endpoint(opts, stack) if opts.model else (None, None)
            return asyncio.run(go(model, base_url))
    except (AgentRejected, LocalServerError) as exc:
        raise ModelUnusable(str(exc)) from exc
