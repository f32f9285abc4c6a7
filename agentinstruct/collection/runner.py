"""One episode: a task, a fresh environment, a ReAct loop, a score, a record.

``run_episode`` drives a ``Builder`` (split-specific: prompt, parser, env,
reward) with an ``AgentClient`` (any OpenAI-compatible server) under one of
two policies:

- ``model``: the agent acts. Each reply is parsed; a reply that does not
  parse becomes the next observation and a counted format error. An action
  the builder calls final (answer, finish) ends the episode, as do the
  environment's ``done``, ``builder.max_turns`` replies, and a conversation
  that outgrows the model's context.
- ``reference`` (task derivation): the builder's reference solution is
  executed in the environment; the model only writes the thought before each
  action, or, with no model, a plain template does. A task without a
  reference solution, or whose reference answer the episode's observations do
  not show (``Builder.shows_answer``), raises ``NoReferenceSolution``: the
  collector counts it as skipped, never as an error to retry.

The environment is synchronous; its calls run in worker threads so many
episodes run at once on one event loop. Model failures (``AgentUnavailable``)
and environment crashes propagate: the collector journals the episode as
errored and retries it on resume.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

from agentinstruct.builders.base import (Action, Builder, Environment, FormatError, NoReferenceSolution, Query,
                                         QueryBuilder, QueryEnvironment, Score, Task, Turn)
from agentinstruct.collection.agent import AgentClient, ContextLimit, Usage
from agentinstruct.records.record import make_record

T = TypeVar("T")

POLICIES: tuple[str, ...] = ("model", "reference")
UNFILTERED: dict[str, Any] = {"bar": None, "kept": False, "reason": "not filtered yet"}
"""The ``filter`` of a record straight from the runner; ``agentinstruct.filters.base`` decides the real one."""

_ROLES = {"human": "user", "gpt": "assistant"}
_THOUGHT_LABEL = re.compile(r"^\s*(thought|think|reasoning)\s*:\s*", re.IGNORECASE)


def truncate(text: str, limit: int) -> str:
    """Cut an observation at ``limit`` characters and say how much was cut.

    Example:
        >>> truncate("abcdef", 4)
        'abcd\\n[truncated: 2 more characters not shown]'
        >>> truncate("abc", 4)
        'abc'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated: {len(text) - limit} more characters not shown]"


def to_messages(turns: list[Turn]) -> list[dict[str, str]]:
    """THUDM turns as chat API messages (human -> user, gpt -> assistant).

    Example:
        >>> to_messages([{"from": "human", "value": "q", "loss": None}, {"from": "gpt", "value": "a", "loss": True}])
        [{'role': 'user', 'content': 'q'}, {'role': 'assistant', 'content': 'a'}]
    """
    return [{"role": _ROLES[t["from"]], "content": t["value"]} for t in turns]


class _Episode:
    """The mutable state of one episode while it runs."""

    def __init__(self, builder: Builder, task: Task, env: Environment):
        self.builder, self.task, self.env = builder, task, env
        self.turns: list[Turn] = [dict(t) for t in builder.prompt(task)]
        if not self.turns or self.turns[-1]["from"] != "human":
            raise ValueError(f"{builder.split} builder: prompt() for task {task.task_id} must end with a human turn")
        self.prompt_turns = len(self.turns)
        self.usage = Usage()
        self.format_errors = 0
        self.final: Action | None = None
        self.termination = "max_turns"
        self.pending: str | None = None  # the observation that goes in only if another agent turn follows

    def agent_turn(self, text: str) -> None:
        if self.pending is not None:
            self.turns.append({"from": "human", "value": self.pending, "loss": None})
            self.pending = None
        self.turns.append({"from": "gpt", "value": text, "loss": True})

    def observe(self, text: str) -> None:
        self.pending = truncate(text, self.builder.observation_limit)

    async def act(self, action: Action) -> bool:
        """Carry out ``action``; True when the episode is over."""
        if self.builder.is_final(action):
            self.final = action
            self.termination = "finished" if action.kind == "finish" else "answered"
            return True
        result = await _env_call(self.builder, self.env.step, action)
        self.observe(result.observation)
        if result.done:
            self.final = action
            self.termination = "finished"
        return result.done

    def observations(self) -> list[str]:
        """What the environment has shown the agent since the task, as the agent saw it (cut), in order."""
        shown = [t["value"] for t in self.turns[self.prompt_turns:] if t["from"] == "human"]
        return shown + ([self.pending] if self.pending is not None else [])

    def messages(self) -> list[dict[str, str]]:
        pending = [{"from": "human", "value": self.pending, "loss": None}] if self.pending is not None else []
        return to_messages(self.turns + pending)


async def _model_policy(ep: _Episode, agent: AgentClient) -> None:
    for _ in range(ep.builder.max_turns):
        try:
            reply = await agent.chat(ep.messages())
        except ContextLimit:
            ep.termination = "context_limit"
            return
        ep.usage.add(reply)
        ep.agent_turn(reply.text)
        parsed = ep.builder.parse(reply.text)
        if isinstance(parsed, FormatError):
            ep.format_errors += 1
            ep.observe(parsed.message)
            continue
        if await ep.act(parsed):
            return


THOUGHT_PROMPT = """You are writing the reasoning of an agent that solves a task step by step.

Task:
{instruction}

What the agent did so far:
{history}

The agent's next action is:
{action}

Write the agent's thought just before this action: one to three sentences, in the first person, saying why this \
action is the right next step. Write only the thought; do not write the action or a label."""

# Small models often copy the prompt's scaffolding ("The agent's next action is: ...") instead of reasoning;
# such a thought would teach the format, not the reasoning, so the template is used instead.
_ECHO = re.compile(r"\b(the agent|next (action|step)( is)?\s*:|my next step\s*:)", re.IGNORECASE)


def _history(ep: _Episode) -> str:
    steps = []
    for turn in ep.turns[ep.prompt_turns :]:  # the prompt is the builder's scaffolding, not the agent's history
        label = "Agent" if turn["from"] == "gpt" else "Result"
        steps.append(f"{label}: {truncate(turn['value'], 400)}")
    if ep.pending is not None:
        steps.append(f"Result: {truncate(ep.pending, 400)}")
    return "\n".join(steps) or "(nothing yet)"


async def _thought(ep: _Episode, action: Action, agent: AgentClient | None) -> str:
    template = ep.builder.template_thought(ep.task, action)
    if agent is None:
        return template
    prompt = THOUGHT_PROMPT.format(
        instruction=ep.task.instruction, history=_history(ep), action=f"{action.kind}: {action.argument}".strip()
    )
    reply = await agent.chat([{"role": "user", "content": prompt}])
    ep.usage.add(reply)
    thought = _THOUGHT_LABEL.sub("", reply.text.strip()).strip()
    # A thought that holds an action of its own, or breaks the split's format, would corrupt the turn.
    rendered = ep.builder.parse(ep.builder.render(thought, action))
    if thought and not _ECHO.search(thought) and isinstance(ep.builder.parse(thought), FormatError) and rendered == action:
        return thought
    return template


def reference_solution(builder: Builder, task: Task) -> list[Action]:
    """The task's reference actions; ``NoReferenceSolution`` when it has none (the builder contract's ValueError).

    Example (an embedded kg question: tool calls, then the final answer):
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> kg = KgBuilder()
        >>> [a.kind for a in reference_solution(kg, kg.load_tasks("embedded")[0])][-1]
        'answer'
        >>> reference_solution(kg, Task("q1", "Who?", "package", {"entities": {}, "actions": ["guess()"]}))
        Traceback (most recent call last):
        ...
        agentinstruct.builders.base.NoReferenceSolution: kg task q1: action 'guess()' is not a call of one of the tools
    """
    try:
        actions = builder.reference_actions(task)
    except NoReferenceSolution:
        raise
    except ValueError as exc:  # the contract's "has none": a task property, so retrying cannot help
        raise NoReferenceSolution(str(exc)) from exc
    if not actions:
        raise NoReferenceSolution(f"{builder.split} task {task.task_id}: the reference solution has no actions")
    return actions


async def _reference_policy(ep: _Episode, agent: AgentClient | None, actions: list[Action]) -> None:
    for action in actions:
        if ep.builder.is_final(action) and not ep.builder.shows_answer(ep.task, action, ep.observations()):
            raise NoReferenceSolution(f"{ep.builder.split} task {ep.task.task_id}: the episode's observations do not "
                                      f"show the reference answer {action.argument!r}")
        try:
            thought = await _thought(ep, action, agent)
        except ContextLimit:
            thought = ep.builder.template_thought(ep.task, action)
        ep.agent_turn(ep.builder.render(thought, action))
        if await ep.act(action):
            return
    ep.termination = "finished"


async def _env_call(builder: Builder, call: Callable[..., T], *args: Any) -> T:
    """An environment call, in a worker thread or on the event loop as ``builder.env_in_thread`` says."""
    return await asyncio.to_thread(call, *args) if builder.env_in_thread else call(*args)


async def _open(builder: Builder, task: Task) -> Environment:
    if not builder.env_in_thread:
        return builder.open_env(task)
    # Shielded: if the episode is cancelled while the env starts in its thread, it is still closed once it is up.
    start = asyncio.ensure_future(asyncio.to_thread(builder.open_env, task))
    try:
        return await asyncio.shield(start)
    except asyncio.CancelledError:
        env = await start
        await asyncio.to_thread(env.close)
        raise


async def run_episode(
    builder: Builder, task: Task, episode_id: str, *, policy: str = "model", agent: AgentClient | None = None
) -> dict[str, Any]:
    """Run one episode of ``task`` and return its scored record (``filter`` still ``UNFILTERED``).

    Raises ``AgentUnavailable`` when the model keeps failing, ``NoReferenceSolution`` under the reference policy
    when the task has no reference solution that shows its answer, and whatever the environment raises.

    Example (the reference policy on an embedded kg question; ``agent=`` with the default policy runs a model):
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> kg = KgBuilder()
        >>> task = kg.load_tasks("embedded")[0]
        >>> record = asyncio.run(run_episode(kg, task, "kg_0", policy="reference"))
        >>> record["reward"], record["reward_details"]["termination"], record["filter"]["reason"]
        (1.0, 'finished', 'not filtered yet')
        >>> asyncio.run(run_episode(kg, task, "kg_0"))
        Traceback (most recent call last):
        ...
        ValueError: --policy model needs a model (--model)
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if policy == "model" and agent is None:
        raise ValueError("--policy model needs a model (--model)")
    # Before the environment starts: a task without a reference solution needs none (the os builder may run a
    # scratch sandbox here, so it runs where the builder's environment calls run).
    actions = await _env_call(builder, reference_solution, builder, task) if policy == "reference" else []
    env = await _open(builder, task)
    try:
        extra = await _env_call(builder, env.reset)
        ep = _Episode(builder, task, env)
        if extra:  # on a line of its own, unless the task turn ends with a space to continue its sentence
            ep.turns[-1]["value"] += ("" if ep.turns[-1]["value"][-1:].isspace() else "\n") + extra
        if policy == "model":
            await _model_policy(ep, agent)
        else:
            await _reference_policy(ep, agent, actions)
        score = await _env_call(builder, env.score, ep.final)
    finally:
        await _env_call(builder, env.close)
    return _record(builder, task, episode_id, ep.turns, score, policy, agent, termination=ep.termination,
                   format_errors=ep.format_errors, usage=ep.usage)


def _record(builder: Builder, task: Task, record_id: str, turns: list[Turn], score: Score, policy: str,
            agent: AgentClient | None, *, termination: str, format_errors: int, usage: Usage) -> dict[str, Any]:
    if agent is not None:
        who = {
            "model": agent.model,
            "endpoint_kind": agent.endpoint_kind,
            "sampling": agent.sampling,
            "usage": agent.usage_record(usage),
        }
    else:
        who = {
            "model": None,
            "endpoint_kind": None,
            "sampling": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
            "usage": {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None},
        }
    return make_record(
        id=record_id,
        split=builder.split,
        conversations=turns,
        task_id=task.task_id,
        instruction=task.instruction,
        instruction_source="task_derivation" if policy == "reference" else task.source,
        reward=score.reward,
        success=score.success,
        reward_details={
            "metric": score.metric,
            "components": [{"name": k, "value": float(v)} for k, v in score.components.items()],
            "termination": termination,
            "format_errors": format_errors,
        },
        env={"name": builder.env_name, "version": builder.env_version, "backend": builder.backend},
        agent={"model": who["model"], "endpoint_kind": who["endpoint_kind"], "policy": policy,
               "sampling": who["sampling"], "usage": who["usage"]},
        filter=dict(UNFILTERED),
    )


async def _query_thought(builder: Builder, task: Task, query: Query, agent: AgentClient | None, usage: Usage) -> str:
    template = builder.template_thought(task, query.reference)
    if agent is None:
        return template
    prompt = THOUGHT_PROMPT.format(instruction=truncate(query.turns[-1]["value"], 4000), history="(nothing yet)",
                                   action=builder.render("", query.reference).strip())
    try:
        reply = await agent.chat([{"role": "user", "content": prompt}])
    except ContextLimit:
        return template
    usage.add(reply)
    thought = _THOUGHT_LABEL.sub("", reply.text.strip()).strip()
    if thought and not _ECHO.search(thought) and builder.parse(builder.render(thought, query.reference)) == query.reference:
        return thought
    return template


async def run_queries(builder: QueryBuilder, task: Task, record_id: str, *, policy: str = "model",
                      agent: AgentClient | None = None) -> list[dict[str, Any]]:
    """Run one episode of a query task and return one scored record per question, ids ``{record_id}.{k}``.

    Each question is a fresh one-turn conversation (``Query.turns``); the model's reply (or, under ``--policy
    reference``, ``Query.reference`` rendered after a thought) is parsed and handed back to the environment, which
    decides the next question. A reply that does not parse is the question's answer as a ``FormatError``, counted.

    Example (a query split of one question, under the reference policy):
        >>> from agentinstruct.builders.base import QueryEnvironment
        >>> class Quiz(QueryEnvironment):
        ...     def __init__(self): self.asked, self.answers = False, []
        ...     def next_query(self):
        ...         if self.asked: return None
        ...         self.asked = True
        ...         return Query([{"from": "human", "value": "2+2? A. 3 B. 4", "loss": None}], Action("B"))
        ...     def answer(self, query, action): self.answers.append(action)
        ...     def scores(self):
        ...         return [Score(float(a == Action("B")), a == Action("B"), "correct") for a in self.answers]
        >>> class QuizBuilder(QueryBuilder):
        ...     split, env_name, env_version, backend = "mind2web", "quiz", "1", "none"
        ...     def load_tasks(self, src): return [Task("q0", "add", "package")]
        ...     def open_env(self, task): return Quiz()
        ...     def parse(self, reply): return Action(reply.split("Answer: ")[-1].strip(" ."))
        ...     def render(self, thought, action): return f"Thought: {thought}\\nAnswer: {action.kind}."
        >>> [rec] = asyncio.run(run_queries(QuizBuilder(), Task("q0", "add", "package"), "x_0", policy="reference"))
        >>> rec["id"], rec["reward"], rec["conversations"][-1]["value"].splitlines()[-1]
        ('x_0.0', 1.0, 'Answer: B.')
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if policy == "model" and agent is None:
        raise ValueError("--policy model needs a model (--model)")
    env: QueryEnvironment = await _open(builder, task)  # type: ignore[assignment]
    posed: list[tuple[list[Turn], Usage, int]] = []
    try:
        while (query := await _env_call(builder, env.next_query)) is not None:
            usage, errors = Usage(), 0
            if policy == "model":
                reply = await agent.chat(to_messages(query.turns))  # type: ignore[union-attr]
                usage.add(reply)
                text = reply.text
                parsed: Action | FormatError = builder.parse(text)
                errors = int(isinstance(parsed, FormatError))
            else:
                text = builder.render(await _query_thought(builder, task, query, agent, usage), query.reference)
                parsed = query.reference
            await _env_call(builder, env.answer, query, parsed)
            posed.append(([dict(t) for t in query.turns] + [{"from": "gpt", "value": text, "loss": True}], usage,
                          errors))
        scores = await _env_call(builder, env.scores)
    finally:
        await _env_call(builder, env.close)
    if len(scores) != len(posed):
        raise ValueError(f"{builder.split} task {task.task_id}: {len(posed)} questions posed but {len(scores)} scores")
    return [_record(builder, task, f"{record_id}.{k}", turns, score, policy, agent,
                    termination="format_error" if errors else "answered", format_errors=errors, usage=usage)
            for k, ((turns, usage, errors), score) in enumerate(zip(posed, scores))]


async def run_task(builder: Builder, task: Task, record_id: str, *, policy: str = "model",
                   agent: AgentClient | None = None) -> list[dict[str, Any]]:
    """One episode of ``task`` as the collector runs it: its records (one, or one per question of a query split).

    Example:
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> kg = KgBuilder()
        >>> [r["id"] for r in asyncio.run(run_task(kg, kg.load_tasks("embedded")[0], "kg_0", policy="reference"))]
        ['kg_0']
    """
    if isinstance(builder, QueryBuilder):
        return await run_queries(builder, task, record_id, policy=policy, agent=agent)
    return [await run_episode(builder, task, record_id, policy=policy, agent=agent)]
