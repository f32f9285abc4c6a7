"""Where a build's episodes run: in this process, or (``--executor ray``) on the nodes of a Ray cluster.

The collector (``agentinstruct.collection.collect``) keeps the journal, the
filters and the dataset dir on the driver whatever the executor; an executor
only runs an episode of a task and hands back its scored records, so a resumed
build gives the same record set wherever its episodes ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ContextManager
from urllib.parse import urlsplit

from agentinstruct.builders.base import Builder, Task
from agentinstruct.collection.agent import AgentClient, AgentRejected
from agentinstruct.collection.runner import run_task

log = logging.getLogger(__name__)


class Executor(ABC):
    """Runs a build's episodes. ``started`` is entered around them; ``run`` runs one."""

    def started(self, builder: Builder, concurrency: int) -> ContextManager[None]:
        """What must be up while ``concurrency`` episodes run (environments started ahead, cluster workers)."""
        return contextlib.nullcontext()

    @abstractmethod
    async def run(self, builder: Builder, task: Task, record_id: str, *, policy: str,
                  agent: AgentClient | None) -> list[dict[str, Any]]:
        """One episode of ``task``: its scored records (``filter`` still unfiltered), ids from ``record_id``."""


class LocalExecutor(Executor):
    """Episodes in this process, on its event loop, their environments in worker threads (the default).

    Example:
        >>> import asyncio
        >>> from agentinstruct.builders.kg.builder import KgBuilder
        >>> kg = KgBuilder()
        >>> records = asyncio.run(LocalExecutor().run(kg, kg.load_tasks("embedded")[0], "kg_0", policy="reference",
        ...                                            agent=None))
        >>> [r["reward"] for r in records]
        [1.0]
    """

    def started(self, builder: Builder, concurrency: int) -> ContextManager[None]:
        """The builder's own preparation (``Builder.warm``: the os split's sandbox pool)."""
        return builder.warm(concurrency)

    async def run(self, builder: Builder, task: Task, record_id: str, *, policy: str,
                  agent: AgentClient | None) -> list[dict[str, Any]]:
        return await run_task(builder, task, record_id, policy=policy, agent=agent)


LOST_RETRIES = 2
"""How many more times a build runs, in the same run, an episode whose Ray node was lost (``WorkerLost``) before it
leaves it errored for the next run; each resume runs errored episodes again, with as many retries."""


class ClusterUnusable(ValueError):
    """Ray is missing, the cluster cannot be reached, or a node could not start the build's actor; a ValueError, so
    the command line prints the message and exits 2, with no traceback."""


class WorkerLost(RuntimeError):
    """The Ray node (or the actor process on it) running an episode died before the episode ended: the episode is
    errored, its environment gone with the node, and it runs again on a live node."""


class NodeWorker:
    """The actor ``RayExecutor`` starts on each node (it wraps the class with ``ray.remote`` then, so this module
    imports without Ray): the node's own builder, made from the driver's builder class and ``Options``, its environments (the
    builder's ``warm``, entered once ``start`` runs) and its model clients, made from the driver's settings with the
    key read from the node's environment."""

    def __init__(self, builder_class: str, options: Any, concurrency: int):
        module, _, name = builder_class.partition(":")
        cls = getattr(importlib.import_module(module), name)
        self.builder: Builder = cls.from_options(options)
        self.builder.options = options
        self.concurrency = concurrency
        self._stack = contextlib.ExitStack()
        self._agents: dict[str, AgentClient] = {}

    async def start(self, slots: int) -> None:
        """Keep ``slots`` environments ready (the builder's ``warm``) and give environment calls enough threads."""
        # Episodes of lost nodes may land here too: threads for the whole build, as the local executor has.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.concurrency + 4, thread_name_prefix="env"))
        self._stack.enter_context(self.builder.warm(slots))

    async def run(self, task: Task, record_id: str, policy: str, agent: dict[str, Any] | None) -> list[dict[str, Any]]:
        """One episode, as ``LocalExecutor.run`` runs it, with the model client these settings describe."""
        return await run_task(self.builder, task, record_id, policy=policy, agent=self._agent(agent))

    def _agent(self, settings: dict[str, Any] | None) -> AgentClient | None:
        if settings is None:
            return None
        # One client (one connection pool) per model; an attempt's sampling seed is a cheap copy of it.
        common = repr(sorted((k, v) for k, v in settings.items() if k != "seed"))
        if common not in self._agents:
            self._agents[common] = AgentClient(**{**settings, "seed": None})
        return self._agents[common].reseeded(settings["seed"])

    async def close(self) -> None:
        """Close the environments kept ready and the model clients."""
        self._stack.close()
        for agent in self._agents.values():
            await agent.close()


@dataclass
class _Actor:
    handle: Any
    node_id: str
    ip: str
    in_flight: int = 0
    ran: int = 0


class RayExecutor(Executor):
    """Episodes on the nodes of a Ray cluster, one actor per node (``NodeWorker``); the journal, the filters and the
    dataset dir stay with the driver, this process.

    An actor per node, not per episode slot: a node's environments are one pool the builder keeps ready (the os
    split's sandboxes), its builder is loaded once (webshop's catalogue, kg's graph), and its model calls share one
    connection pool; episodes spend their time waiting on the model and on environments that run in threads or
    subprocesses, so one event loop per node carries them, as it does in the local executor. Each actor takes one
    CPU of its node: a node with none free (``ray start --num-cpus 0``, e.g. a head kept for the driver) gets
    none. ``concurrency`` episodes are spread evenly over the nodes, each new one to the actor with the fewest in
    flight, and each node keeps its share of environments ready.

    A node that dies takes its episodes' environments with it: each episode it ran raises ``WorkerLost`` naming the
    node, the collector journals it as errored and runs it again on a live node (``LOST_RETRIES`` times in the run,
    then on resume), and no further episode goes there. The model server must be reachable from every node: a
    server on the driver's loopback address (``--model local``) is refused once a node runs on another machine.

    Example (needs a running cluster: ``ray start --head`` here, ``ray start --address HEAD:6379`` elsewhere):
        >>> from agentinstruct.builders.kg.builder import KgBuilder  # doctest: +SKIP
        >>> kg, executor = KgBuilder(), RayExecutor("auto")  # doctest: +SKIP
        >>> async def one():  # doctest: +SKIP
        ...     with executor.started(kg, 4):
        ...         return await executor.run(kg, kg.load_tasks("embedded")[0], "kg_0", policy="reference", agent=None)
        >>> [r["reward"] for r in asyncio.run(one())]  # doctest: +SKIP
        [1.0]
    """

    def __init__(self, address: str = "auto", *, start_timeout: float = 600.0):
        self.address = address
        self.start_timeout = start_timeout
        self.lost: dict[str, str] = {}
        """Nodes lost during the build: why, by node id."""
        self.ran: dict[str, int] = {}
        """Episodes each node ran to their end (scored, or failed there as they would have locally), by node id."""
        self._builder: Builder | None = None
        self._actors: list[_Actor] = []
        self._driver_ip = ""

    @contextlib.contextmanager
    def started(self, builder: Builder, concurrency: int) -> Iterator[None]:
        """Connect to the cluster (unless this process already is), start an actor on each node with a free CPU,
        each keeping its share of ``concurrency`` environments ready; stop them (and disconnect) afterwards."""
        ray = _ray()
        connect = not ray.is_initialized()
        if connect:
            try:
                ray.init(address=self.address, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ClusterUnusable(f"cannot connect to the Ray cluster at --ray-address {self.address}: "
                                      f"{_first_line(exc)}") from exc
        try:
            self._driver_ip = ray.util.get_node_ip_address()
            self._actors = self._start(ray, builder, concurrency)
            self._builder = builder
            try:
                yield
            finally:
                self._stop(ray)
        finally:
            if connect:
                ray.shutdown()

    def _start(self, ray: Any, builder: Builder, concurrency: int) -> list[_Actor]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
        if not nodes:
            raise ClusterUnusable(f"the Ray cluster at {self.address} has no live node with a free CPU for episodes")
        cls = type(builder)
        path = f"{cls.__module__}:{cls.__qualname__}"
        options = builder.options if builder.options is not None else cls.Options()
        slots = -(-concurrency // len(nodes))
        worker = ray.remote(NodeWorker)
        actors = [_Actor(worker.options(
            num_cpus=1, max_restarts=0, max_concurrency=concurrency + 2,
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
        ).remote(path, options, concurrency), n["NodeID"], n["NodeManagerAddress"]) for n in nodes]
        starts = {a.handle.start.remote(slots): a for a in actors}
        try:
            ready, pending = ray.wait(list(starts), num_returns=len(starts), timeout=self.start_timeout)
            if pending:
                late = ", ".join(f"{starts[r].ip} ({starts[r].node_id[:8]})" for r in pending)
                raise ClusterUnusable(f"the episode actors on Ray nodes {late} did not start within "
                                      f"{self.start_timeout:.0f}s (is a CPU free there?)")
            for ref in ready:
                try:
                    ray.get(ref)
                except Exception as exc:
                    a = starts[ref]
                    raise ClusterUnusable(f"Ray node {a.ip} ({a.node_id[:8]}) could not start the {builder.split} "
                                          f"builder {path}: {_first_line(exc)}") from exc
        except BaseException:
            for a in actors:
                ray.kill(a.handle)
            raise
        log.info("running %s episodes on %d Ray nodes (%s), %d ready per node", builder.split, len(actors),
                 ", ".join(a.ip for a in actors), slots)
        return actors

    def _stop(self, ray: Any) -> None:
        self.ran = {a.node_id: a.ran for a in self._actors}
        log.info("episodes per Ray node: %s", ", ".join(f"{a.ip} ({a.node_id[:8]}) {a.ran}" for a in self._actors))
        closing = [a.handle.close.remote() for a in self._actors]
        with contextlib.suppress(Exception):  # a node that died meanwhile has nothing left to close
            ray.wait(closing, num_returns=len(closing), timeout=120)
        for a in self._actors:
            ray.kill(a.handle)
        self._actors, self._builder = [], None

    async def run(self, builder: Builder, task: Task, record_id: str, *, policy: str,
                  agent: AgentClient | None) -> list[dict[str, Any]]:
        """One episode on the node with the fewest in flight; raises what the episode raised there, ``WorkerLost``
        when the node died under it, ``AgentRejected`` when the model server is on a loopback address that a node on
        another machine cannot reach."""
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        if builder is not self._builder:
            raise ValueError("RayExecutor.run: the builder is not the one the executor was started with")
        if agent is not None:
            self._check_reachable(agent)
        live = [a for a in self._actors if a.node_id not in self.lost]
        if not live:
            raise WorkerLost(f"no Ray node is left to run {record_id} (task {task.task_id}): every node this build "
                             f"started on was lost ({'; '.join(self.lost.values())})")
        actor = min(live, key=lambda a: a.in_flight)
        actor.in_flight += 1
        ref = actor.handle.run.remote(task, record_id, policy, agent.settings() if agent is not None else None)
        try:
            records = await ref
        except RayTaskError as exc:  # the episode's own exception, raised on the node: hand it over as it was
            actor.ran += 1
            if isinstance(exc.cause, Exception):
                raise exc.cause from exc
            raise
        except (RayActorError, WorkerCrashedError) as exc:
            why = f"Ray node {actor.ip} ({actor.node_id[:8]}) was lost: {_first_line(exc)}"
            if actor.node_id not in self.lost:
                self.lost[actor.node_id] = why
                log.warning("%s; its episodes run again on the other nodes", why)
            raise WorkerLost(f"{why} (running {record_id}, task {task.task_id})") from None
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                _ray().cancel(ref)
            raise
        finally:
            actor.in_flight -= 1
        actor.ran += 1
        return records

    def _check_reachable(self, agent: AgentClient) -> None:
        host = urlsplit(agent.base_url or "").hostname
        if not host or not _loopback(host):
            return
        far = sorted({a.ip for a in self._actors if a.ip != self._driver_ip})
        if far:
            raise AgentRejected(
                f"the model server {agent.base_url} listens on this machine's loopback address, which the Ray nodes "
                f"at {', '.join(far)} cannot reach (--model local serves there): serve the model where every node "
                "can reach it and pass its --base-url, or build with --executor local")


EXECUTORS = ("local", "ray")


def make_executor(name: str, ray_address: str = "auto") -> Executor:
    """The executor ``--executor NAME`` names (``--ray-address`` for ``ray``).

    Example:
        >>> type(make_executor("local")).__name__, make_executor("ray", "10.0.0.1:6379").address
        ('LocalExecutor', '10.0.0.1:6379')
    """
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(ray_address)
    raise ValueError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterUnusable("--executor ray needs Ray on the driver and on every node: "
                              "pip install 'agentinstruct[ray]'") from None
    return ray


def _loopback(host: str) -> bool:
    """Whether ``host`` names this machine only.

    Example:
        >>> _loopback("127.0.0.1"), _loopback("localhost"), _loopback("::1"), _loopback("10.1.2.3"), _loopback("api.x")
        (True, True, True, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _first_line(exc: BaseException) -> str:
    # Ray's messages run to several lines with advice; the first says what happened.
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"
