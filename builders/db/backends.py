"""Database backends for the db split: one fresh, fenced database per episode.

``SqliteBackend`` (the embedded default) gives each episode its own in-memory database (or, for a task that
names a SQLite file, a private copy of it in a temp dir). An authorizer refuses ATTACH (and so VACUUM INTO),
DETACH, writing PRAGMAs and ``load_extension``; a progress handler stops a statement at its deadline;
``max_page_count`` and the length limit cap how much a statement can store or build.

``MariadbBackend`` talks to a MariaDB/MySQL server with an admin account: each episode gets its own database and
its own user, granted rights on that database only and no global rights (so no FILE: no LOAD_FILE, INTO OUTFILE
or LOAD DATA INFILE; ``local_infile`` is off in the client). A watchdog kills a statement at its deadline from
the admin side (a session setting could be overridden by the statement itself); an unbuffered cursor stops
reading after the row cap. The database and the user are dropped when the episode ends.

Both run one statement per call (a second statement is an error) and commit after it, as AgentBench did.
All task columns are created as TEXT, as AgentBench created them, compared case-insensitively like MySQL's
default collation.
"""

from __future__ import annotations

import math
import secrets
import shutil
import sqlite3
import ssl
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Sequence

Row = tuple[Any, ...]


class DbError(Exception):
    """A statement the database refused or stopped; its message is what the agent sees."""


@dataclass(frozen=True)
class Limits:
    """What one statement may cost. ``max_rows``: rows read back; ``timeout_s``: wall time per statement;
    ``max_bytes``: storage of an episode database (SQLite) and the largest value a statement may build."""

    timeout_s: float = 10.0
    max_rows: int = 1000
    max_bytes: int = 64 * 2**20
    max_table_rows: int = 200_000
    """Rows read when hashing a table for the reward; a bigger table scores 0."""


@dataclass(frozen=True)
class Result:
    """A statement's outcome: column names (empty for statements without a result set), rows, and whether
    rows were cut at the row cap."""

    columns: tuple[str, ...]
    rows: list[Row]
    truncated: bool = False


def quote_sqlite(name: str) -> str:
    """A SQLite identifier in double quotes, inner quotes doubled.

    Example:
        >>> quote_sqlite('a "b" c')
        '"a ""b"" c"'
    """
    return '"' + name.replace('"', '""') + '"'


def quote_mysql(name: str) -> str:
    """A MySQL/MariaDB identifier in backticks, inner backticks doubled.

    Example:
        >>> quote_mysql("a `b` c")
        '`a ``b`` c`'
    """
    return "`" + name.replace("`", "``") + "`"


def plain_value(value: Any) -> Any:
    """A result cell as a plain Python value (str, int, float, None), the same kinds on every backend.

    Example:
        >>> plain_value(Decimal("2.50")), plain_value(b"ab"), plain_value(__import__("datetime").date(2020, 1, 2))
        (2.5, 'ab', '2020-01-02')
    """
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)  # dates, times and durations (MariaDB) read as the server writes them


class Database(ABC):
    """One episode's database."""

    @abstractmethod
    def execute(self, sql: str) -> Result:
        """Run one statement under the limits and commit; raise ``DbError`` with the engine's message."""

    @abstractmethod
    def read_table(self, table: str, columns: Sequence[str]) -> list[Row]:
        """Every row of ``table`` (those columns, as stored), for hashing; ``DbError`` if unreadable or too big."""

    @abstractmethod
    def close(self) -> None:
        """Drop the database and free what it holds. Safe to call twice."""


class Backend(ABC):
    """Makes episode databases."""

    name: str

    @staticmethod
    @abstractmethod
    def quote(name: str) -> str:
        """An identifier quoted for this engine."""

    @abstractmethod
    def open(self, tables: list[dict[str, Any]] | None, sqlite_file: str | None) -> Database:
        """A fresh database holding the task's tables (inline) or a copy of a SQLite file's tables."""

    def close(self) -> None:
        """Release what the backend holds (nothing for SQLite)."""


def read_sqlite_tables(path: str) -> Iterator[dict[str, Any]]:
    """Tables of a SQLite file as ``{name, columns: [{name, type}], rows}`` (rows an iterator), read-only.

    Example:
        >>> con = sqlite3.connect("concert_singer.sqlite")
        >>> _ = con.executescript("CREATE TABLE stadium (stadium_id INTEGER, name TEXT);"
        ...                       "CREATE TABLE singer (singer_id INTEGER, name);"
        ...                       "INSERT INTO singer VALUES (1, 'Joe Sharp'), (2, 'Timbaland');")
        >>> con.close()
        >>> for t in read_sqlite_tables("concert_singer.sqlite"):  # rows are read while the file is open
        ...     print(t["name"], [c["type"] for c in t["columns"]], list(t["rows"]))
        stadium ['INTEGER', 'TEXT'] []
        singer ['INTEGER', 'TEXT'] [(1, 'Joe Sharp'), (2, 'Timbaland')]
    """
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        for name in names:
            info = con.execute(f"PRAGMA table_info({quote_sqlite(name)})").fetchall()
            columns = [{"name": r[1], "type": r[2] or "TEXT"} for r in info]
            cols = ", ".join(quote_sqlite(c["name"]) for c in columns)
            yield {"name": name, "columns": columns, "rows": con.execute(f"SELECT {cols} FROM {quote_sqlite(name)}")}
    finally:
        con.close()


# ---------------------------------------------------------------- SQLite

# PRAGMAs that only read the schema; every other PRAGMA (max_page_count, writable_schema, ...) is refused.
_READ_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
                 "foreign_key_list"}
_REFUSED_FUNCTIONS = {"load_extension"}


def _authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _READ_PRAGMAS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _REFUSED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


class SqliteDatabase(Database):
    """An in-memory SQLite database (or a temp copy of a file) fenced by an authorizer and a deadline."""

    def __init__(self, limits: Limits, tables: list[dict[str, Any]] | None, sqlite_file: str | None) -> None:
        self.limits = limits
        self._tmp: str | None = None
        self._deadline = math.inf
        if sqlite_file:
            self._tmp = tempfile.mkdtemp(prefix="agentinstruct-db-")
            copy = Path(self._tmp) / "episode.sqlite"
            shutil.copyfile(sqlite_file, copy)
            target = str(copy)
        else:
            target = ":memory:"
        # Worker threads of the engine take turns on the episode, never at once.
        self.con = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        try:
            page_size = self.con.execute("PRAGMA page_size").fetchone()[0]
            used = self.con.execute("PRAGMA page_count").fetchone()[0]
            self.con.execute(f"PRAGMA max_page_count = {used + limits.max_bytes // page_size}")
            for table in tables or []:
                self._create(table)
        except Exception:
            self.close()
            raise
        self.con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, min(limits.max_bytes, 2**31 - 1))
        self.con.set_authorizer(_authorize)
        self.con.set_progress_handler(self._progress, 1000)

    def _create(self, table: dict[str, Any]) -> None:
        name = quote_sqlite(table["name"])
        cols = ", ".join(f"{quote_sqlite(c['name'])} TEXT COLLATE NOCASE" for c in table["columns"])
        self.con.execute(f"CREATE TABLE {name} ({cols})")
        marks = ", ".join("?" for _ in table["columns"])
        self.con.executemany(f"INSERT INTO {name} VALUES ({marks})", table["rows"])

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def execute(self, sql: str) -> Result:
        """Run one statement; errors, a refused action and the deadline come back as ``DbError``."""
        self._deadline = time.monotonic() + self.limits.timeout_s
        try:
            cur = self.con.execute(sql)
            rows = cur.fetchmany(self.limits.max_rows + 1)
            columns = tuple(d[0] for d in cur.description or ())
            cur.close()
            if self.con.in_transaction:
                self.con.commit()
        except sqlite3.Error as e:
            if self.con.in_transaction:
                self.con.rollback()
            message = str(e)
            if message == "interrupted":
                message = f"interrupted: the statement ran longer than {self.limits.timeout_s:g} s"
            elif message in ("not authorized", "authorization denied"):
                message = "not authorized: the statement reaches outside this database"
            raise DbError(message) from None
        except (sqlite3.Warning, ValueError, OverflowError) as e:
            # sqlite3 raises Warning for several statements at once and ValueError for NUL characters.
            raise DbError(str(e)) from None
        finally:
            self._deadline = math.inf
        cut = len(rows) > self.limits.max_rows
        return Result(columns, [tuple(plain_value(v) for v in r) for r in rows[: self.limits.max_rows]], cut)

    def read_table(self, table: str, columns: Sequence[str]) -> list[Row]:
        """The table as stored, read from the main schema (a TEMP table of the same name does not count)."""
        cols = ", ".join(quote_sqlite(c) for c in columns)
        self._deadline = time.monotonic() + self.limits.timeout_s
        try:
            rows = self.con.execute(f"SELECT {cols} FROM main.{quote_sqlite(table)}").fetchmany(
                self.limits.max_table_rows + 1)
        except sqlite3.Error as e:
            raise DbError(str(e)) from None
        finally:
            self._deadline = math.inf
        if len(rows) > self.limits.max_table_rows:
            raise DbError(f"table {table} has more than {self.limits.max_table_rows} rows")
        return rows

    def close(self) -> None:
        """Close the connection (an in-memory database is gone with it) and delete a file copy."""
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class SqliteBackend(Backend):
    """SQLite in-process, the embedded default: nothing to install or start.

    Example:
        >>> db = SqliteBackend().open([{"name": "t x", "columns": [{"name": "a b", "type": "TEXT"}],
        ...                             "rows": [["1"], ["2"]]}], None)
        >>> db.execute('SELECT COUNT(*) FROM "t x"').rows
        [(2,)]
        >>> db.close()
    """

    name = "sqlite"
    quote = staticmethod(quote_sqlite)

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    def open(self, tables: list[dict[str, Any]] | None, sqlite_file: str | None) -> Database:
        """A fresh database for one episode."""
        return SqliteDatabase(self.limits, tables, sqlite_file)


# ---------------------------------------------------------------- MariaDB / MySQL

EPISODE_PREFIX = "ai_ep_"
"""Names of episode databases and users: ai_ep_<backend token>_<episode token>."""
OWNER_LOCK = "agentinstruct_owner_"
"""Named lock (+ backend token) a live backend holds on the server."""

# Rights on the episode's own database only: no global rights, so no FILE, PROCESS, SUPER or GRANT.
_EPISODE_GRANTS = ("SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE VIEW, SHOW VIEW, "
                   "CREATE TEMPORARY TABLES, LOCK TABLES")
_MYSQL_TYPES = {"INTEGER": "BIGINT", "INT": "BIGINT", "REAL": "DOUBLE", "NUMERIC": "DOUBLE", "BLOB": "LONGBLOB"}


def _mysql_type(declared: str) -> str:
    """A column type for a table copied from a SQLite file, by SQLite's affinity rules (text by default)."""
    d = declared.upper()
    if "INT" in d:
        return _MYSQL_TYPES["INT"]
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return _MYSQL_TYPES["REAL"]
    if any(k in d for k in ("DEC", "NUM")):
        return _MYSQL_TYPES["NUMERIC"]
    if "BLOB" in d:
        return _MYSQL_TYPES["BLOB"]
    return "TEXT"


@dataclass(frozen=True)
class ServerAddress:
    """Where the MariaDB/MySQL server is and its admin account; the password is read from the environment."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)


class MariadbDatabase(Database):
    """One episode's database and user on a MariaDB/MySQL server."""

    def __init__(self, backend: "MariadbBackend", tables: list[dict[str, Any]] | None,
                 sqlite_file: str | None) -> None:
        import pymysql

        self._pymysql = pymysql
        self.backend = backend
        self.limits = backend.limits
        # The database and its user share one name that starts with the owning backend's token (see sweep()).
        self.db = self.user = f"{EPISODE_PREFIX}{backend.token}_{secrets.token_hex(6)}"
        self._password = secrets.token_urlsafe(18)
        self._created = False
        with backend.admin() as admin, admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {quote_mysql(self.db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            self._created = True
            try:
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS 4",
                            (self.user, self._password))
                cur.execute(f"GRANT {_EPISODE_GRANTS} ON {quote_mysql(self.db)}.* TO %s@'%%'", (self.user,))
                cur.execute(f"USE {quote_mysql(self.db)}")
                for table in tables or []:
                    self._create(cur, table, typed=False)
                if sqlite_file:
                    for table in read_sqlite_tables(sqlite_file):
                        self._create(cur, table, typed=True)
            except Exception:
                self.close()
                raise

    def _create(self, cur: Any, table: dict[str, Any], typed: bool) -> None:
        name = quote_mysql(table["name"])
        cols = ", ".join(f"{quote_mysql(c['name'])} {_mysql_type(c['type']) if typed else 'TEXT'}"
                         for c in table["columns"])
        cur.execute(f"CREATE TABLE {name} ({cols})")
        marks = ", ".join("%s" for _ in table["columns"])
        rows = iter(table["rows"])
        while batch := [tuple(r) for _, r in zip(range(1000), rows)]:
            cur.executemany(f"INSERT INTO {name} VALUES ({marks})", batch)

    def _connect(self) -> Any:
        try:
            return self.backend.connect(self.user, self._password, self.db)
        except self._pymysql.MySQLError as e:
            raise DbError(f"cannot connect to the episode database: {e.args[-1] if e.args else e}") from None

    def _run(self, sql: str, max_rows: int) -> tuple[tuple[str, ...], list[Row], bool]:
        """Run ``sql`` in a session of its own under the watchdog; stop reading after ``max_rows``.

        A session per statement is what AgentBench had (it reconnected before every statement): no session
        state (``SET``, TEMP tables, open transactions) carries from one turn to the next.
        """
        pymysql = self._pymysql
        con = self._connect()
        thread_id = con.thread_id()
        fired = threading.Event()

        def kill() -> None:
            fired.set()
            self.backend.kill_query(thread_id)

        timer = threading.Timer(self.limits.timeout_s, kill)
        timer.daemon = True
        timer.start()
        cut = False
        try:
            cur = con.cursor(pymysql.cursors.SSCursor)
            cur.execute(sql)
            columns = tuple(d[0] for d in cur.description or ())
            rows = list(cur.fetchmany(max_rows + 1)) if columns else []
            cut = len(rows) > max_rows
            if not cut:
                cur.close()
                con.commit()
        except pymysql.MySQLError as e:
            if fired.is_set():
                raise DbError(f"interrupted: the statement ran longer than {self.limits.timeout_s:g} s") from None
            code, message = (tuple(e.args) + ("", ""))[:2]
            raise DbError(f"{code}: {message}" if message else str(code or e)) from None
        finally:
            timer.cancel()
            if cut:
                # Stop the server sending the rest, so that closing the cursor drains only what is in flight.
                self.backend.kill_query(thread_id)
                try:
                    cur.close()
                except pymysql.MySQLError:
                    pass  # the interruption the kill causes
            try:
                con.close()
            except pymysql.MySQLError:
                pass  # the session is gone already; the server ends its side
        return columns, rows[:max_rows], cut

    def execute(self, sql: str) -> Result:
        """Run one statement as the episode user; errors and the deadline come back as ``DbError``."""
        if not sql.strip():
            raise DbError("empty statement")
        columns, rows, cut = self._run(sql, self.limits.max_rows)
        return Result(columns, [tuple(plain_value(v) for v in r) for r in rows], cut)

    def read_table(self, table: str, columns: Sequence[str]) -> list[Row]:
        """The table as stored, read in a fresh session."""
        cols = ", ".join(quote_mysql(c) for c in columns)
        _, rows, cut = self._run(f"SELECT {cols} FROM {quote_mysql(table)}", self.limits.max_table_rows)
        if cut:
            raise DbError(f"table {table} has more than {self.limits.max_table_rows} rows")
        return rows

    def close(self) -> None:
        """End every session of the episode user, drop the user and the database."""
        if not self._created:
            return
        with self.backend.admin() as admin, admin.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE user = %s", (self.user,))
            for (thread,) in cur.fetchall():
                try:
                    cur.execute(f"KILL CONNECTION {int(thread)}")
                except self._pymysql.MySQLError:
                    pass  # it ended on its own meanwhile
            cur.execute("DROP USER IF EXISTS %s@'%%'", (self.user,))
            cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql(self.db)}")
        self._created = False


class MariadbBackend(Backend):
    """A MariaDB (or MySQL) server, the engine AgentBench used; the server is the user's (or the tests')."""

    name = "mariadb"
    quote = staticmethod(quote_mysql)

    def __init__(self, address: ServerAddress, limits: Limits | None = None) -> None:
        import pymysql

        self._pymysql = pymysql
        self.address = address
        self.limits = limits or Limits()
        self._tls: dict[str, Any] = {}
        with self.admin() as con, con.cursor() as cur:
            cur.execute("SELECT VERSION()")
            self.version = cur.fetchone()[0]
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            uses_tls = bool((cur.fetchone() or ("", ""))[1])
        # pymysql builds a TLS context (loading every CA certificate, ~30 ms) on each connect in its default
        # "TLS if offered" mode; an episode opens several connections, so the outcome of that mode is fixed once.
        if uses_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # what pymysql's default mode checks
            self._tls = {"ssl": ctx}
        else:
            self._tls = {"ssl_disabled": True}
        self.token = secrets.token_hex(4)
        self._owner_guard = threading.Lock()
        self._owner = self._hold_owner_lock()
        self.swept = self.sweep()

    def _hold_owner_lock(self) -> Any:
        """An admin session holding the named lock that marks this backend's episode databases as in use."""
        con = self.admin()
        with con.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (OWNER_LOCK + self.token,))
            if cur.fetchone()[0] != 1:
                raise ConnectionError(f"could not take the lock {OWNER_LOCK + self.token} on the MariaDB server")
        return con

    def sweep(self) -> int:
        """Drop the episode databases and users of backends whose process died (their owner lock is free).

        A build killed mid-episode cannot drop what its episodes created; the server frees a dead session's
        named locks, which is how a later backend tells leftovers from the live episodes of a concurrent build.
        Returns how many databases and users it dropped.
        """
        dropped = 0
        with self.admin() as con, con.cursor() as cur:
            pattern = EPISODE_PREFIX.replace("_", "\\_") + "%"
            cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (pattern,))
            databases = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT user, host FROM mysql.user WHERE user LIKE %s", (pattern,))
            users = cur.fetchall()
            owners = {name[len(EPISODE_PREFIX):].split("_")[0] for name in databases + [u for u, _ in users]}
            for owner in owners - {self.token}:
                cur.execute("SELECT IS_FREE_LOCK(%s)", (OWNER_LOCK + owner,))
                if cur.fetchone()[0] != 1:
                    continue  # a live build's episodes
                prefix = f"{EPISODE_PREFIX}{owner}_"
                for user, host in users:
                    if user.startswith(prefix):
                        cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
                        dropped += 1
                for name in databases:
                    if name.startswith(prefix):
                        cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql(name)}")
                        dropped += 1
        return dropped

    def _keep_owner_lock(self) -> None:
        """Reconnect the lock holder if the server dropped it (idle timeout), so sweeps keep sparing our episodes."""
        with self._owner_guard:
            try:
                self._owner.ping(reconnect=False)
            except self._pymysql.MySQLError:
                self._owner = self._hold_owner_lock()

    def connect(self, user: str, password: str, database: str | None = None) -> Any:
        """A new connection to the server as ``user`` (pymysql connections are not shared between threads)."""
        a = self.address
        return self._pymysql.connect(host=a.host, port=a.port, user=user, password=password, database=database,
                                     charset="utf8mb4", autocommit=True, local_infile=False, connect_timeout=10,
                                     **self._tls)

    def admin(self) -> Any:
        """A new admin connection."""
        a = self.address
        try:
            return self.connect(a.user, a.password)
        except self._pymysql.MySQLError as e:
            raise ConnectionError(f"cannot reach the MariaDB server at {a.host}:{a.port} as {a.user}: "
                                  f"{e.args[-1] if e.args else e}") from None

    def kill_query(self, thread_id: int) -> None:
        """Stop whatever the session ``thread_id`` is running."""
        try:
            with self.admin() as con, con.cursor() as cur:
                cur.execute(f"KILL QUERY {int(thread_id)}")
        except (self._pymysql.MySQLError, ConnectionError):
            pass  # the statement ended or the session is gone: nothing left to stop

    def open(self, tables: list[dict[str, Any]] | None, sqlite_file: str | None) -> Database:
        """A fresh database and user for one episode."""
        self._keep_owner_lock()
        return MariadbDatabase(self, tables, sqlite_file)

    def close(self) -> None:
        """Release the owner lock (episodes still open keep their databases until they close)."""
        with self._owner_guard:
            try:
                self._owner.close()
            except self._pymysql.MySQLError:
                pass  # already gone: the server released the lock with it
