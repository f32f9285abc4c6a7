"""A throwaway MariaDB server for the tests: a temp data dir, 127.0.0.1 on a free port, stopped afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agentinstruct.builders.db.backends import ServerAddress
from agentinstruct.collection.localmodel import free_port


def mariadb_available() -> bool:
    """Whether the MariaDB server programs are installed (apt ``mariadb-server``)."""
    return bool(shutil.which("mariadb-install-db") and (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()))


@contextmanager
def mariadb_server() -> Iterator[ServerAddress]:
    """Start a private server with an empty data dir; yield its admin address (root, no password); stop it.

    Example:
        >>> with mariadb_server() as address:  # doctest: +SKIP
        ...     MariadbBackend(address)
    """
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    # A short path: the server's unix socket path must stay under 108 characters.
    root = Path(tempfile.mkdtemp(prefix="ai-mdb-"))
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    log = root / "server.log"
    try:
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={root / 'data'}", "--skip-test-db",
                        "--auth-root-authentication-method=normal", *as_root],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        port = free_port()
        server = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={root / 'data'}", f"--socket={root / 'sock'}",
             f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
             f"--pid-file={root / 'pid'}", f"--log-error={log}", "--local-infile=0",
             f"--secure-file-priv={root / 'data'}",
             # Durability is worthless for a throwaway server; these make table creation cheap.
             "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0",
             "--innodb-doublewrite=0", "--max-connections=200", *as_root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_ready(port, server, log)
            yield ServerAddress(host="127.0.0.1", port=port, user="root", password="")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(port: int, server: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    import pymysql

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {server.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", password="", connect_timeout=2).close()
            return
        except pymysql.MySQLError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"mariadbd did not accept connections in {timeout:g} s") from None
            time.sleep(0.1)
