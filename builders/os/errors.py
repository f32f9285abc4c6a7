"""The os sandbox's two failures, in a module of their own so that every sandbox module (the sandbox, its cgroups,
its admission, its pool) raises the same ones without importing the others."""

from __future__ import annotations


class SandboxUnavailable(ValueError):
    """No sandbox backend can start here (a ValueError so the CLI reports it as one clear line)."""


class SandboxError(RuntimeError):
    """A running sandbox stopped answering or broke its protocol; the episode is an environment error."""

