"""The agent: any server that speaks the OpenAI chat API (OpenAI, vLLM, TGI, llama.cpp server).

``AgentClient`` posts ``/chat/completions`` requests over one aiohttp session
with the engine's retry policy: 429, 408/409, 5xx, dropped connections and
timeouts are retried with exponential backoff and jitter; when the retries are
spent the call raises ``AgentUnavailable`` and the engine journals the episode
as errored, to be retried on resume. A refusal that retrying cannot fix (bad
key, unknown model) raises ``AgentRejected`` at once; a prompt longer than the
model's context raises ``ContextLimit``, which ends the episode like a
max-turns stop.

Why aiohttp and not the ``openai`` SDK: at 256 episodes in flight the SDK cost
6.6 ms of CPU per episode (two calls), three quarters of it in httpx's
connection pool, which scans every pooled connection on each request, and in
building and validating its typed request and response objects; the same
calls over aiohttp cost 1.5 ms (``benchmarks/bench_collect.py``, README
"Throughput"). The request and the reply are the API's plain JSON either way.

The key is read from an environment variable and sent only in the
``Authorization`` header; it is never logged, printed or stored. Servers that
need no key (a local llama.cpp or vLLM) get a placeholder.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import random
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

ENDPOINT_KIND = "openai-compatible"
OPENAI_URL = "https://api.openai.com/v1"
"""Where requests go without ``base_url`` or ``OPENAI_BASE_URL``, as with the openai SDK."""
KEYLESS = "no-key"
"""What the client sends as the key when the named variable is unset (local servers ignore it)."""

_RETRY_STATUS = {408, 409, 429}


class AgentUnavailable(RuntimeError):
    """The model could not be reached or kept failing after every retry; the episode is errored, not failed."""


class AgentRejected(AgentUnavailable):
    """The server refused the request in a way retrying cannot fix (authentication, unknown model, bad request)."""


class ContextLimit(RuntimeError):
    """The conversation no longer fits the model's context window."""


@dataclass(frozen=True)
class Reply:
    """One model answer: its text, the tokens the server reported, and how many retries it took."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0


@dataclass
class Usage:
    """Token usage of one episode, accumulated over its model calls.

    Example:
        >>> u = Usage(); u.add(Reply("hi", prompt_tokens=10, completion_tokens=2)); (u.calls, u.prompt_tokens)
        (1, 10)
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, reply: Reply) -> None:
        """Count one answered call."""
        self.calls += 1
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens


@dataclass(frozen=True)
class Prices:
    """USD per 1,000 prompt and completion tokens; None where the price is unknown.

    Example:
        >>> Prices(prompt=0.5, completion=1.5).cost(Usage(prompt_tokens=2000, completion_tokens=1000))
        2.5
        >>> Prices().cost(Usage(prompt_tokens=2000)) is None
        True
    """

    prompt: float | None = None
    completion: float | None = None

    def cost(self, usage: Usage) -> float | None:
        """The cost of ``usage``, or None when neither price was given."""
        if self.prompt is None and self.completion is None:
            return None
        return round(
            usage.prompt_tokens / 1000 * (self.prompt or 0.0) + usage.completion_tokens / 1000 * (self.completion or 0.0),
            8,
        )


@dataclass
class ClientStats:
    """Counters over the client's lifetime, for progress display and tests: calls, retries, calls that gave up."""

    calls: int = 0
    retries: int = 0
    failures: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)


class AgentClient:
    """An OpenAI-compatible chat model with the engine's retry policy.

    Example (needs a model server: here the OpenAI API, with the key in ``OPENAI_API_KEY``):
        >>> agent = AgentClient("gpt-4o-mini")  # doctest: +SKIP
        >>> reply = asyncio.run(agent.chat([{"role": "user", "content": "hi"}]))  # doctest: +SKIP
        >>> reply.text, reply.prompt_tokens  # doctest: +SKIP
        ('Hello!', 8)
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        prices: Prices = Prices(),
    ):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.prices = prices
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.stats = ClientStats()
        key = os.environ.get(api_key_env) or KEYLESS
        # Kept only to scrub it from error texts a server might echo back.
        self._secret = key if key != KEYLESS else None
        self._base = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self._url = self._base + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._session = _Session(self._url, timeout)

    @property
    def sampling(self) -> dict[str, Any]:
        """The record's ``agent.sampling``."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}

    def settings(self) -> dict[str, Any]:
        """The keyword arguments that make this client again in another process (a Ray node): the key's environment
        variable by name, never the key, which that process reads from its own environment.

        Example:
            >>> settings = AgentClient("m", base_url="http://127.0.0.1:1/v1", timeout=5, seed=2).settings()
            >>> AgentClient(**settings).settings() == settings, settings["api_key_env"]
            (True, 'OPENAI_API_KEY')
        """
        return {"model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env,
                "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed,
                "timeout": self.timeout, "max_retries": self.max_retries, "backoff_base": self.backoff_base,
                "backoff_max": self.backoff_max, "prices": self.prices}

    def reseeded(self, seed: int | None) -> "AgentClient":
        """This client with sampling seed ``seed`` (one attempt of ``--attempts``): the same connections, retry
        statistics and settings otherwise.

        Example:
            >>> AgentClient("m", base_url="http://127.0.0.1:1/v1", seed=3).reseeded(4).sampling["seed"]
            4
        """
        other = copy.copy(self)
        other.seed = seed
        return other

    @property
    def endpoint_kind(self) -> str:
        """The record's ``agent.endpoint_kind``."""
        return ENDPOINT_KIND

    def usage_record(self, usage: Usage) -> dict[str, Any]:
        """The record's ``agent.usage`` for one episode's ``usage``, priced when prices were given."""
        return {
            "calls": usage.calls,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": self.prices.cost(usage),
        }

    def _request(self) -> dict[str, Any]:
        # Unset settings are left out so the server's own defaults apply.
        return {k: v for k, v in self.sampling.items() if v is not None}

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= self.backoff_max:
            return retry_after
        cap = min(self.backoff_max, self.backoff_base * 2**attempt)
        return cap / 2 + random.uniform(0, cap / 2)  # jitter keeps many episodes from retrying in lockstep

    async def chat(self, messages: list[dict[str, str]]) -> Reply:
        """One chat completion for ``messages`` (``role``/``content`` dicts), retried as the class describes.

        Raises ``AgentUnavailable`` when retries are spent, ``AgentRejected`` on a refusal retrying cannot fix,
        ``ContextLimit`` when the prompt is too long for the model.
        """
        self.stats.calls += 1
        body = json.dumps({"model": self.model, "messages": messages, **self._request()})
        for attempt in range(self.max_retries + 1):
            try:
                session = self._session.get()
                async with session.post(self._url, data=body, headers=self._headers) as response:
                    status, text = response.status, await response.text()
                    retry_after = _retry_after(response.headers.get("retry-after"))
            except asyncio.TimeoutError:
                cause, retry_after = "timeout", None
            except aiohttp.ClientError as exc:
                cause, retry_after = f"connection error ({type(exc).__name__})", None
            else:
                if status < 400:
                    return self._reply(text, attempt)
                described = f"HTTP {status}: {_error_message(text)}"[:500]
                if status == 400 and _is_context_error(described):
                    raise ContextLimit(self._scrub(described)) from None
                if status not in _RETRY_STATUS and status < 500:
                    self.stats.failures += 1
                    raise AgentRejected(self._scrub(f"{self._where()} refused the request: {described}")) from None
                cause = f"HTTP {status}"
            self.stats.by_cause[cause] = self.stats.by_cause.get(cause, 0) + 1
            if attempt == self.max_retries:
                self.stats.failures += 1
                raise AgentUnavailable(
                    f"{self._where()} failed {attempt + 1} times in a row; last: {cause}"
                ) from None
            self.stats.retries += 1
            delay = self._delay(attempt, retry_after)
            log.info("%s: %s; retry %d of %d in %.1fs", self._where(), cause, attempt + 1, self.max_retries, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _reply(self, text: str, retries: int) -> Reply:
        try:
            response = json.loads(text)
            choices = response["choices"]
            content = choices[0]["message"]["content"] if choices else None
            usage = response.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise AgentUnavailable(f"{self._where()} answered with something that is not a chat completion: "
                                   f"{self._scrub(text[:200])!r}") from None
        if not choices:
            raise AgentUnavailable(f"{self._where()} answered with no choices")
        return Reply(
            text=content or "",
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            retries=retries,
        )

    def _where(self) -> str:
        return f"model {self.model!r} at {self._base}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._session.close()

    async def __aenter__(self) -> "AgentClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Session:
    """The aiohttp session a client and its ``reseeded`` copies share, made on first use in the running event loop
    (aiohttp sessions belong to one loop, and a client is often made before any loop runs)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        # The proxy from the environment (HTTPS_PROXY, NO_PROXY, ...), looked up once: aiohttp's trust_env looks it
        # up, and the .netrc file, in a worker thread on every request, four thread hand-offs per two-call episode.
        self.proxy = None if urllib.request.proxy_bypass_environment(urlsplit(url).hostname or "") else \
            urllib.request.getproxies_environment().get(urlsplit(url).scheme)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            # No connection cap: the engine bounds how many requests are in flight.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=self.timeout),
                proxy=self.proxy,
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()


def _error_message(text: str) -> str:
    """The message of an error answer: OpenAI's ``{"error": {"message": ...}}``, another JSON ``message``, or the
    text itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip() or "(empty answer)"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return str(error)


def _is_context_error(message: str) -> bool:
    text = message.lower()
    return "context" in text and any(w in text for w in ("length", "window", "exceed", "too long", "maximum"))


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the backoff schedule is good enough
