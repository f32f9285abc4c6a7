"""Warm sandboxes for the os split: ``SandboxPool`` keeps sandboxes started
ahead of need, so taking one is off an episode's critical path; a build's
pools come from ``WarmSandboxes``.

A module of its own, above ``agentinstruct.builders.os.sandbox``: pools start
their sandboxes as ``open_sandbox`` does (each admitted by ``ADMISSION``
first) and only hand them out; a pooled sandbox is never reused.
"""

from __future__ import annotations

import collections
import os
import threading
import time

from agentinstruct.builders.os import admission
from agentinstruct.builders.os.errors import SandboxError, SandboxUnavailable
from agentinstruct.builders.os.limits import Limits
from agentinstruct.builders.os.sandbox import DEFAULT_DOCKER_IMAGE, Sandbox, admit_and_start, resolve_backend


STARTERS = 16
"""Threads starting a pool's sandboxes at most."""


class SandboxPool:
    """Sandboxes of one (backend, limits, Docker image) started ahead of need: ``size`` are kept ready, refilled by
    background threads as they are taken, each admitted by ``ADMISSION`` like any start. ``acquire`` hands one
    out for good: the pool never sees it again, so every sandbox it gives is as fresh as ``open_sandbox``'s.
    ``close`` (or leaving the ``with`` block) closes the ones still ready.

    Example (needs bubblewrap):
        >>> with SandboxPool("bubblewrap", size=2) as pool:  # doctest: +SKIP
        ...     with pool.acquire() as box:
        ...         box.shell("echo fresh").text
        'fresh\\n'
    """

    def __init__(self, backend: str = "auto", limits: Limits = Limits(), docker_image: str = DEFAULT_DOCKER_IMAGE,
                 size: int = 2):
        if size < 1:
            raise ValueError(f"a sandbox pool keeps at least 1 ready, got size={size}")
        self.backend = resolve_backend(backend)
        self.limits, self.docker_image, self.size = limits, docker_image, size
        self._admission = admission.ADMISSION
        self._changed = threading.Condition()
        self._ready: collections.deque[Sandbox] = collections.deque()
        self._failures: collections.deque[Exception] = collections.deque()
        self._starting = 0
        self._stop = threading.Event()
        # A start mostly waits (bwrap setting up namespaces and mounts, the shell coming up): 24 starts of 256 MiB
        # sandboxes took 3.45 s with 2 starters and 1.48 s with 16 on 2 cores, and 32 episodes in flight against a
        # 1 s model need 16 starts a second.
        self._starters = [threading.Thread(target=self._fill, name=f"sandbox-pool-{i}", daemon=True)
                          for i in range(min(size, STARTERS))]
        for starter in self._starters:
            starter.start()

    def _fill(self) -> None:
        while True:
            with self._changed:
                # A failure holds its slot until an acquire reports it, so a broken start is not retried in a loop.
                while not self._stop.is_set() and len(self._ready) + len(self._failures) + self._starting >= self.size:
                    self._changed.wait()
                if self._stop.is_set():
                    return
                self._starting += 1
            box: Sandbox | None = None
            failure: Exception | None = None
            try:
                box = admit_and_start(self.backend, self.limits, self.docker_image, self._admission, self._stop)
            except Exception as exc:  # handed to the next acquire, which raises it in the episode that wanted it
                failure = exc
            with self._changed:
                self._starting -= 1
                if not self._stop.is_set():
                    if box is not None:
                        self._ready.append(box)
                        box = None
                    elif failure is not None:
                        self._failures.append(failure)
                self._changed.notify_all()
            if box is not None:  # started while the pool closed
                box.close()

    def ready(self) -> int:
        """How many sandboxes are ready now."""
        with self._changed:
            return len(self._ready)

    def fill(self, timeout: float | None = None) -> int:
        """Wait until ``size`` sandboxes are ready (or a start failed, or ``timeout`` seconds passed); how many are."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._ready) >= self.size or self._failures or self._stop.is_set(),
                                   timeout)
            return len(self._ready)

    def acquire(self, timeout: float | None = None) -> Sandbox:
        """A ready sandbox, now (waiting only when none is ready: for a start, or for memory), yours to close.

        Raises what the start of that sandbox raised (``SandboxUnavailable``), or ``SandboxUnavailable`` when none
        is ready within ``timeout`` seconds (default: the admission's wait plus the start timeout).
        """
        seconds = self._admission.wait_s + self.limits.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        while True:
            with self._changed:
                while not self._ready and not self._failures:
                    left = deadline - time.monotonic()
                    if self._stop.is_set():
                        raise SandboxError("the sandbox pool is closed")
                    if left <= 0:
                        raise SandboxUnavailable(f"no sandbox was ready within {seconds:g} s")
                    self._changed.wait(left)
                if not self._ready:
                    self._changed.notify_all()  # a starter may try again
                    raise self._failures.popleft()
                box = self._ready.popleft()
            alive = box.running()
            if not alive:
                box.close()  # ended while it waited (killed from outside): take the next
            # Only now wake a starter to refill the slot: woken earlier, its start would hold the GIL while this
            # thread checks the sandbox.
            with self._changed:
                self._changed.notify_all()
            if alive:
                return box

    def close(self) -> None:
        """Stop refilling and close the sandboxes still ready. Safe to call twice."""
        with self._changed:
            self._stop.set()
            leftovers = list(self._ready)
            self._ready.clear()
            self._changed.notify_all()
        for box in leftovers:
            box.close()
        for starter in self._starters:
            starter.join()

    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WarmSandboxes:
    """A pool per (backend, limits, Docker image) in use, ``size`` ready each, for the length of a build: the os
    builder takes its sandboxes from here while one runs. A bubblewrap pool serves every image (it has none).

    Example (needs bubblewrap):
        >>> with WarmSandboxes(size=4) as warm:  # doctest: +SKIP
        ...     warm.acquire("bubblewrap", Limits(), DEFAULT_DOCKER_IMAGE).close()
    """

    def __init__(self, size: int):
        self.size = size
        self._pools: dict[tuple[str, Limits, str | None], SandboxPool] = {}
        self._lock = threading.Lock()
        self._closed = False

    def pool(self, backend: str, limits: Limits, docker_image: str) -> SandboxPool:
        """The pool for these (started on first use)."""
        key = (backend, limits, docker_image if backend == "docker" else None)
        with self._lock:
            if self._closed:
                raise SandboxError("the build's sandbox pools are closed")
            if key not in self._pools:
                self._pools[key] = SandboxPool(backend, limits, docker_image, self.size)
            return self._pools[key]

    def acquire(self, backend: str, limits: Limits, docker_image: str) -> Sandbox:
        """A fresh sandbox from the pool for these."""
        return self.pool(backend, limits, docker_image).acquire()

    def close(self) -> None:
        """Close every pool and the sandboxes still ready in them."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    def __enter__(self) -> "WarmSandboxes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

