"""The ``os`` split: an agent at a bash prompt in a sandboxed Linux root, AgentBench's OS-interaction tasks.

Tasks: AgentBench OS JSON (``agentinstruct.builders.os.tasks``) from a file (``--scripts`` for its scripts),
``embedded`` (the tasks shipped in ``builders/os/data``), or ``self-instruct`` (the model writes tasks, the
sandbox verifies them: ``agentinstruct.builders.os.selfinstruct``).

Episode: a fresh sandbox (``agentinstruct.builders.os.sandbox``); the task's init scripts run as their own processes and
its ``start`` command in the agent's shell; then up to 8 agent turns of ``Think:`` / ``Act: bash`` + a bash
block, ending with ``Act: answer(...)`` or ``Act: finish``. Observations begin "The output of the OS:".
Reward: the task's own verdict, 1 or 0 (metric ``success``): the stripped answer equals ``match``, or every
``check`` script exits 0 inside the same sandbox after the episode (``null`` = run the example and pass its
output as argv[2]; the answer is argv[1], ``None`` after ``finish``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, ClassVar

from agentinstruct.builders.base import Action, Builder, Environment, FormatError, Score, StepResult, Task, Turn
from agentinstruct.builders.os.tasks import command, load_task_file, random_seed
from agentinstruct.builders.os.sandbox import BACKENDS, DEFAULT_DOCKER_IMAGE, Limits, Output, Sandbox, open_sandbox, resolve_backend
from agentinstruct.collection.selfinstruct import SELF_INSTRUCT, add_count_option, self_instructed_tasks

DATA = Path(__file__).parent / "data"
"""The embedded tasks (tasks.json), the checkers they and self-instructed tasks use (check/), the Dockerfile."""
EMBEDDED = "embedded"

INSTRUCTIONS = """You are an agent working at the terminal of a Linux (Ubuntu) machine as root. I stand for the \
operating system: I run the bash code you send and show you what it printed. Your job is to carry out the \
operation I ask for, or to find the answer to my question. In each turn, first reason about what to do next, \
then take exactly one of three actions: "bash", "finish" or "answer".

1. To run bash code, reply in this form:

Think: your reasoning.

Act: bash

```bash
# the commands to run
```

2. When the operation I asked for is done, reply:

Think: your reasoning.

Act: finish

3. When you know the answer to my question, reply:

Think: your reasoning.

Act: answer(only the answer, inside the parentheses)

Long outputs are cut and the cut part is not shown, so narrow them down in the shell (count, filter, take the \
head). Your commands must not wait for keyboard input. Take exactly one action per turn."""

ONE_SHOT_QUESTION = "How many regular files are there under /usr/share/doc, subdirectories included?"
ONE_SHOT: tuple[tuple[str, str], ...] = (
    ("gpt", "Think: Listing the files under /usr/share/doc will show what is there.\n\nAct: bash\n\n"
            "```bash\nfind /usr/share/doc -type f\n```"),
    ("human", "The output of the OS:\n\n/usr/share/doc/bash/README\n/usr/share/doc/bash/copyright\n"
              "/usr/share/doc/coreutils/changelog.Debian.gz\n/usr/share/doc/coreutils/copyright\n"
              "/usr/share/doc/curl/copyright\n/usr/share/doc/git/README.md\n"
              "[truncated: 61234 more characters not shown]"),
    ("gpt", "Think: The listing is too long to read whole, so I will let the shell count the lines.\n\n"
            "Act: bash\n\n```bash\nfind /usr/share/doc -type f | wc -l\n```"),
    ("human", "The output of the OS:\n\n1387"),
    ("gpt", "Think: There are 1387 regular files under /usr/share/doc.\n\nAct: answer(1387)"),
)
NEW_PROBLEM = "Now, I will start a new problem in a new OS. My problem is:\n\n"

_ACT = re.compile(r"Act:\s*(.+)")
_BASH_BLOCK = re.compile(r"```(?:bash|sh)[ \t]*\n(.*?)\n```", re.DOTALL)
NO_ACTION = ("Your reply has no action I can run. End it with `Act: bash` followed by a ```bash block, or with "
             "`Act: answer(...)`, or with `Act: finish`.")
NO_BLOCK = "`Act: bash` needs the commands in a ```bash block after it. Nothing was run."


def parse_reply(reply: str) -> Action | FormatError:
    """The last ``Act:`` line decides, as in AgentBench: bash (all ```bash blocks), finish, or answer(...).

    Example:
        >>> parse_reply("Think: count.\\n\\nAct: answer(42)")
        Action(kind='answer', argument='42')
        >>> parse_reply("Act: bash\\n\\n```bash\\nls\\n```")
        Action(kind='bash', argument='ls')
        >>> parse_reply("I think it is 42.")  # doctest: +ELLIPSIS
        FormatError(message='Your reply has no action I can run. ...')
    """
    for found in reversed(list(_ACT.finditer(reply))):
        act = found.group(1).strip().lower()
        if act.startswith("bash"):
            code = "\n\n".join(_BASH_BLOCK.findall(reply))
            return Action("bash", code) if code.strip() else FormatError(NO_BLOCK)
        if act.startswith("finish"):
            return Action("finish")
        if act.startswith("answer"):
            rest = reply[found.start(1) + len("answer"):]
            left, right = rest.find("("), rest.rfind(")")
            if left != -1 and right > left:
                return Action("answer", rest[left + 1:right])
    return FormatError(NO_ACTION)


def render_turn(thought: str, action: Action) -> str:
    """A gpt turn in the os format; ``parse_reply(render_turn(t, a)) == a``.

    Example:
        >>> print(render_turn("I count them.", Action("answer", "3")))
        Think: I count them.
        <BLANKLINE>
        Act: answer(3)
    """
    if action.kind == "bash":
        return f"Think: {thought}\n\nAct: bash\n\n```bash\n{action.argument}\n```"
    if action.kind == "answer":
        return f"Think: {thought}\n\nAct: answer({action.argument})"
    return f"Think: {thought}\n\nAct: finish"


def observation(out: Output) -> str:
    """What the agent sees after a bash action.

    Example:
        >>> observation(Output("3\\n", 2, 0))
        'The output of the OS:\\n\\n3\\n'
        >>> observation(Output("", 0, 0))
        'The output of the OS is empty.'
    """
    note = f"[{out.note}]\n" if out.note else ""
    if not out.text:
        return f"The output of the OS:\n{note}" if note else "The output of the OS is empty."
    return f"The output of the OS:\n{note}\n{out.text}"


def prepare(box: Sandbox, task: Task) -> list[Output]:
    """Run the task's init scripts (own processes, ``$RANDOM`` seeded by the task id) and its ``start`` command
    (in the agent's shell); their outputs, in order."""
    seed = random_seed(task.task_id)
    outputs = [box.exec(command(script, [], seed=seed)) for script in task.payload["init"]]
    if task.payload["start"]:
        outputs.append(box.shell(task.payload["start"]))
    return outputs


def judge(box: Sandbox, payload: dict, answer: str | None) -> bool:
    """The task's verdict on ``answer`` (None after ``finish``), checkers run in ``box``.

    Example:
        >>> judge(box, {"match": {"answer": "3", "strip": True}, "check": None}, " 3\\n")  # doctest: +SKIP
        True
    """
    match = payload["match"]
    if match is not None:
        if answer is None:
            return False
        if match.get("strip", True):
            answer = answer.strip()
        if "answer" in match:
            return answer == match["answer"]
        return re.search(match["regex"], answer) is not None
    params = [str(answer)]
    for script in payload["check"]:
        out = box.exec(command(script if script is not None else payload["example"], params))
        if out.exit_code != 0:
            return False
        params.append(out.text)
    return True


def example_action(payload: dict) -> Action:
    """The task's example solution as one bash action (a python example runs through a here-document).

    Example:
        >>> example_action({"example": ["bash", "ls | wc -l"]})
        Action(kind='bash', argument='ls | wc -l')
    """
    language, code = payload["example"]
    if language == "python":
        return Action("bash", f"python3 - <<'AGENTINSTRUCT_PY'\n{code}\nAGENTINSTRUCT_PY")
    return Action("bash", code.strip("\n"))


class OsEnvironment(Environment):
    """One episode's sandbox: prepared on ``reset``, driven by bash actions, judged by the task's checkers."""

    def __init__(self, task: Task, box: Sandbox):
        self.task, self.box = task, box

    def reset(self) -> str | None:
        """Run init scripts and the start command; nothing is added to the task text."""
        prepare(self.box, self.task)
        return None

    def step(self, action: Action) -> StepResult:
        """Run a bash action in the persistent shell."""
        if action.kind != "bash":
            return StepResult(f"Unknown action {action.kind!r}; use bash, answer or finish.")
        return StepResult(observation(self.box.shell(action.argument)))

    def score(self, final: Action | None) -> Score:
        """1 when the task's match/check accepts the final answer; 0 when it does not or the agent never finished."""
        if final is None:
            ok = False  # out of rounds: AgentBench does not judge
        else:
            ok = judge(self.box, self.task.payload, final.argument if final.kind == "answer" else None)
        return Score(reward=1.0 if ok else 0.0, success=ok, metric="success")

    def close(self) -> None:
        """Kill the sandbox and everything in it."""
        self.box.close()


class OsBuilder(Builder):
    """AgentBench OS interaction in a sandbox per episode."""

    split: ClassVar[str] = "os"
    env_name: ClassVar[str] = "os_interaction"
    env_version: ClassVar[str] = "1.0"
    max_turns: ClassVar[int] = 8
    reward_bar: ClassVar[float] = 1.0

    def __init__(self, *, scripts: Path | None = None, backend: str = "auto", limits: Limits = Limits(),
                 docker_image: str = DEFAULT_DOCKER_IMAGE, options: argparse.Namespace | None = None):
        self.scripts = scripts
        self._backend = resolve_backend(backend)
        self.limits = limits
        self.docker_image = docker_image
        self._options = options  # the build's options: --tasks self-instruct needs its model, --out and --n

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Scripts folder, sandbox backend and limits, and the self-instruct task count."""
        g = parser.add_argument_group("os split")
        g.add_argument("--scripts", type=Path, metavar="DIR",
                       help="folder the task file's script paths are relative to (AgentBench: scripts/dev for "
                       "data/dev.json); default: the checkers shipped with agentinstruct")
        g.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="sandbox: bubblewrap, docker, or auto (bubblewrap if it runs, else docker; never the "
                       "bare host)")
        g.add_argument("--docker-image", default=DEFAULT_DOCKER_IMAGE,
                       help=f"image for --backend docker (default {DEFAULT_DOCKER_IMAGE}, from builders/os/data)")
        g.add_argument("--command-timeout", type=float, default=Limits.command_timeout, metavar="S",
                       help=f"seconds before a shell command is interrupted (default {Limits.command_timeout:g})")
        add_count_option(g)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "OsBuilder":
        """The builder for the parsed ``build``/``eval`` options."""
        return cls(scripts=args.scripts, backend=args.backend, limits=Limits(command_timeout=args.command_timeout),
                   docker_image=args.docker_image, options=args)

    @property
    def backend(self) -> str:
        """``bubblewrap`` or ``docker``."""
        return self._backend

    def open_sandbox(self, task: Task | None = None) -> Sandbox:
        """A fresh sandbox on this builder's backend (a task's own Docker image when it names one)."""
        image = (task.payload.get("image") if task is not None else None) or self.docker_image
        return open_sandbox(self._backend, self.limits, image)

    def load_tasks(self, src: str) -> list[Task]:
        """``embedded``, ``self-instruct`` (needs ``--out`` and a model), or an AgentBench OS task file."""
        if src == EMBEDDED:
            return load_task_file(DATA / "tasks.json", DATA, "train_split", prefix=EMBEDDED)
        if src == SELF_INSTRUCT:
            from agentinstruct.builders.os.selfinstruct import STORE  # it imports this module

            return self_instructed_tasks(self, self._options, STORE,
                                         lambda path: load_task_file(path, DATA, "self_instruct"))
        return load_task_file(Path(src), self.scripts or DATA, "train_split")

    async def self_instruct(self, agent: Any, n: int, out: Path, *, seed: int = 0,
                            concurrency: int = 4) -> tuple[list[Task], Any]:
        """Grow the AgentBench OS task file ``out`` to ``n`` model-written, sandbox-verified tasks (see
        ``builders.os_selfinstruct``); returns its tasks and a report."""
        from agentinstruct.builders.os.selfinstruct import self_instruct

        return await self_instruct(self, agent, n, out, seed=seed, concurrency=concurrency)

    def open_env(self, task: Task) -> Environment:
        """A fresh sandbox for the episode."""
        return OsEnvironment(task, self.open_sandbox(task))

    def prompt(self, task: Task) -> list[Turn]:
        """Instructions with the one-shot question, the one-shot (``loss: False``), then the task."""
        turns: list[Turn] = [{"from": "human", "value": f"{INSTRUCTIONS}\n\nNow, my problem is:\n\n{ONE_SHOT_QUESTION}",
                              "loss": None}]
        for who, text in ONE_SHOT:
            turns.append({"from": who, "value": text, "loss": False if who == "gpt" else None})
        turns.append({"from": "human", "value": NEW_PROBLEM + task.instruction, "loss": None})
        return turns

    def parse(self, reply: str) -> Action | FormatError:
        """See ``parse_reply``."""
        return parse_reply(reply)

    def is_final(self, action: Action) -> bool:
        """answer and finish end the episode."""
        return action.kind in ("answer", "finish")

    def template_thought(self, task: Task, action: Action) -> str:
        """The thought before a reference action when no model writes one."""
        if action.kind == "bash":
            return "I will run this in the shell to get what I need."
        if action.kind == "answer":
            return f"The output gives the answer: {action.argument}."
        return "The operation is done, so I will finish."

    def reference_actions(self, task: Task) -> list[Action]:
        """Match tasks: answer the expected string. Check tasks: run the example, then answer what it printed
        (computed ahead in a scratch sandbox prepared like the episode's), or finish when the checkers ignore
        the answer."""
        payload = task.payload
        if payload["match"] is not None:
            if "answer" not in payload["match"]:
                raise ValueError(f"os task {task.task_id}: a regex match has no reference answer")
            return [Action("answer", payload["match"]["answer"])]
        if payload["example"] is None:
            raise ValueError(f"os task {task.task_id} has no example solution")
        action = example_action(payload)
        if None not in payload["check"]:
            return [action, Action("finish")]
        with self.open_sandbox(task) as box:
            prepare(box, task)
            out = box.exec(command(payload["example"], []))
        if out.exit_code != 0:
            raise ValueError(f"os task {task.task_id}: the example solution failed (exit {out.exit_code}): "
                             f"{out.text[-300:]!r}")
        return [action, Action("answer", out.text.strip())]

    def render(self, thought: str, action: Action) -> str:
        """See ``render_turn``."""
        return render_turn(thought, action)
