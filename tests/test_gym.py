"""``TextEnv``: a split's environment driven from outside a build, in Gymnasium's shape, scoring as a build does."""

from __future__ import annotations

import pytest

from agentinstruct.builders import builder_class
from agentinstruct.builders.gym import TextEnv


def _solve(env: TextEnv) -> tuple[float, bool, int]:
    """Play the task's reference solution as reply texts; (reward, terminated, steps)."""
    builder, task = env.builder, env.task
    for steps, action in enumerate(builder.reference_actions(task), start=1):
        observation, reward, terminated, truncated, info = env.step(builder.render("Next step.", action))
        assert not info["format_error"] and isinstance(observation, str)
        if terminated or truncated:
            return reward, terminated, steps
    raise AssertionError("the reference solution never ended the episode")


@pytest.mark.parametrize("split", ["kg", "os", "db"])
def test_the_reference_solution_through_text_env_gets_the_builds_reward(split, request, agentbench):
    if split == "os":
        request.getfixturevalue("sandbox_backend")
    builder = builder_class(split)()
    source = str(agentbench / "dbbench" / "dev.jsonl") if split == "db" else "embedded"
    tasks = [t for t in builder.load_tasks(source) if split != "db" or t.payload["kind"] == "modification"][:3]
    with TextEnv(builder, tasks) as env:
        for i, task in enumerate(tasks):
            observation, info = env.reset(options={"task": task.task_id})
            assert info["task_id"] == task.task_id and info["prompt"][-1]["value"] == observation
            reward, terminated, steps = _solve(env)
            assert (reward, terminated) == (1.0, True), (task.task_id, steps)


def test_format_errors_then_out_of_turns_is_truncated_with_the_unfinished_score():
    builder = builder_class("kg")()
    env = TextEnv(builder, builder.load_tasks("embedded"))
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("Action: count(#0)")
    env.reset(seed=3)
    for turn in range(1, builder.max_turns + 1):
        observation, reward, terminated, truncated, info = env.step("I am not sure what to do.")
        assert info["format_error"] and not terminated and info["turn"] == turn
        assert truncated == (turn == builder.max_turns) and reward == 0.0
    assert info["score"].reward == 0.0 and not info["score"].success
    with pytest.raises(RuntimeError):
        env.step("Final Answer: #0")
    env.close()


def test_tasks_are_picked_by_id_index_seed_or_in_turn():
    builder = builder_class("kg")()
    tasks = builder.load_tasks("embedded")[:4]
    with TextEnv(builder, tasks) as env:
        assert [env.reset()[1]["task_id"] for _ in range(5)] == [t.task_id for t in tasks + tasks[:1]]
        assert env.reset(options={"task": 2})[1]["task_id"] == tasks[2].task_id
        assert env.reset(seed=7)[1]["task_id"] == env.reset(seed=7)[1]["task_id"]
        with pytest.raises(KeyError, match="no task 'nope'"):
            env.reset(options={"task": "nope"})
