"""The agent: any server that speaks the OpenAI chat API (OpenAI, vLLM, TGI, llama.cpp server).

``AgentClient`` wraps ``openai.AsyncOpenAI`` with the engine's retry policy:
429, 408/409, 5xx, dropped connections and timeouts are retried with
exponential backoff and jitter; when the retries are spent the call raises
``AgentUnavailable`` and the engine journals the episode as errored, to be
retried on resume. A refusal that retrying cannot fix (bad key, unknown
model) raises ``AgentRejected`` at once; a prompt longer than the model's
context raises ``ContextLimit``, which ends the episode like a max-turns stop.

The key is read from an environment variable and handed to the client only;
it is never logged, printed or stored. Servers that need no key (a local
llama.cpp or vLLM) get a placeholder.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion

log = logging.getLogger(__name__)

ENDPOINT_KIND = "openai-compatible"
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
        # The openai client's own retries are off: this class retries so the count is visible and the policy is one.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=key,
            timeout=timeout,
            max_retries=0,
        )

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
        for attempt in range(self.max_retries + 1):
            try:
                # The client's generic POST: chat.completions.create re-walks every message through its
                # TypedDict transform, which cost a third of the engine's CPU at 64 episodes in flight.
                response = await self._client.post(
                    "/chat/completions", body={"model": self.model, "messages": messages, **self._request()},
                    cast_to=ChatCompletion,
                )
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status == 400 and _is_context_error(exc):
                    raise ContextLimit(self._scrub(_describe(exc))) from None
                if status not in _RETRY_STATUS and status < 500:
                    self.stats.failures += 1
                    raise AgentRejected(self._scrub(f"{self._where()} refused the request: {_describe(exc)}")) from None
                cause, retry_after = f"HTTP {status}", _retry_after(exc)
            except openai.APITimeoutError:
                cause, retry_after = "timeout", None
            except openai.APIConnectionError as exc:
                cause, retry_after = f"connection error ({_root_cause(exc)})", None
            else:
                return self._reply(response, attempt)
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

    def _reply(self, response: Any, retries: int) -> Reply:
        if not response.choices:
            raise AgentUnavailable(f"{self._where()} answered with no choices")
        usage = response.usage
        return Reply(
            text=response.choices[0].message.content or "",
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else 0,
            retries=retries,
        )

    def _where(self) -> str:
        return f"model {self.model!r} at {self._client.base_url}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> "AgentClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _describe(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {exc.status_code}: {message or exc.message}"[:500]


def _is_context_error(exc: openai.APIStatusError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return "context" in text and any(w in text for w in ("length", "window", "exceed", "too long", "maximum"))


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the backoff schedule is good enough


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return type(exc).__name__
