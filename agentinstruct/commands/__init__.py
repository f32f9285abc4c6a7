"""Subcommands of the ``agentinstruct`` CLI, one module per group; each exposes ``register(subparsers)``."""
