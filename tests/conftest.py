"""Shared fixtures. Paths to the AgentBench task data beside the repo (../shared/data/agentbench)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
AGENTBENCH = REPO.parent / "shared" / "data" / "agentbench"


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose prerequisite is missing here; fail it in CI (CI=true), where `make setup` installs every
    prerequisite, so a broken install step cannot hide behind skipped tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run this test: `make setup` installs what it needs)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sandbox_backend() -> str:
    """The bubblewrap sandbox backend, checked to work on this machine."""
    from agentinstruct.builders.os.errors import SandboxUnavailable
    from agentinstruct.builders.os.sandbox import resolve_backend

    try:
        return resolve_backend("bubblewrap")
    except SandboxUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture
def agentbench() -> Path:
    """The AgentBench task files; tests that need them skip with a reason when the folder is absent."""
    if not AGENTBENCH.exists():
        pytest.skip(f"AgentBench data not found at {AGENTBENCH}")
    return AGENTBENCH


@pytest.fixture
def local_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A local Hub test double (tests/hub_server.py) on 127.0.0.1, with ``huggingface_hub`` and ``datasets``
    pointed at it: ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``, a fake ``HF_TOKEN``, offline mode off, caches in a temp
    dir. Yields the server: ``.endpoint``, ``.token``, ``.requests`` (every request served), ``.store``."""
    import secrets

    from hub_server import LocalHub, hub_environment

    root = tmp_path_factory.mktemp("local_hub")
    with LocalHub(root / "store", token=f"hf_localtest{secrets.token_hex(12)}") as hub:
        with hub_environment(hub, root, monkeypatch):
            yield hub


@pytest.fixture(scope="session")
def mariadb():
    """A throwaway MariaDB server (tests/mariadb_server.py) on 127.0.0.1, one per test session; yields its admin
    ``ServerAddress``. Skips with a reason when the server programs (apt mariadb-server) are not installed."""
    from mariadb_server import mariadb_available, mariadb_server

    if not mariadb_available():
        unavailable("MariaDB server not installed (apt mariadb-server; make setup installs it)")
    with mariadb_server() as address:
        yield address
