"""Hostile SQL stays inside its episode's database: files, other databases, the server and the clock are safe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentinstruct.builders.db.backends import DbError, Limits, MariadbBackend, SqliteBackend

TABLE = {"name": "T x", "columns": [{"name": "a", "type": "TEXT"}, {"name": "b c", "type": "TEXT"}],
         "rows": [[str(i), f"v{i}"] for i in range(40)]}
LIMITS = Limits(timeout_s=1.0, max_rows=100, max_bytes=8 * 2**20)


def refused(db, sql: str) -> str:
    with pytest.raises(DbError) as info:
        db.execute(sql)
    return str(info.value)


@pytest.fixture
def sqlite_db():
    db = SqliteBackend(LIMITS).open([TABLE], None)
    yield db
    db.close()


@pytest.fixture(scope="module")
def server(mariadb):
    return MariadbBackend(mariadb, LIMITS)


@pytest.fixture
def mariadb_db(server):
    db = server.open([TABLE], None)
    yield db
    db.close()


# ---------------------------------------------------------------- SQLite

def test_sqlite_refuses_files_and_settings(sqlite_db, tmp_path: Path):
    target = tmp_path / "stolen.db"
    for sql in (f"ATTACH DATABASE '{target}' AS s", f"VACUUM INTO '{target}'", "VACUUM",
                "PRAGMA max_page_count = 1000000000", "PRAGMA writable_schema = 1", "PRAGMA journal_mode = WAL",
                "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')", "DETACH DATABASE main"):
        assert "not authorized" in refused(sqlite_db, sql), sql
    assert not target.exists()
    # Reading the schema is allowed.
    assert sqlite_db.execute('PRAGMA table_info("T x")').rows[0][1] == "a"


def test_sqlite_stops_long_statements(sqlite_db):
    started = time.monotonic()
    message = refused(sqlite_db, 'SELECT COUNT(*) FROM "T x" a, "T x" b, "T x" c, "T x" d, "T x" e, "T x" f')
    assert "interrupted" in message
    assert "interrupted" in refused(
        sqlite_db, "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT COUNT(*) FROM r")
    assert time.monotonic() - started < 6
    # The database still works afterwards.
    assert sqlite_db.execute('SELECT COUNT(*) FROM "T x"').rows == [(40,)]


def test_sqlite_caps_size_rows_and_values(sqlite_db):
    assert "too big" in refused(sqlite_db, "SELECT length(randomblob(100000000))")
    message = refused(sqlite_db, "CREATE TABLE big AS WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r "
                                 "WHERE i < 100000) SELECT randomblob(1000) AS b FROM r")
    assert "full" in message or "interrupted" in message
    result = sqlite_db.execute('SELECT a.a FROM "T x" a, "T x" b')
    assert len(result.rows) == LIMITS.max_rows and result.truncated
    assert "one statement" in refused(sqlite_db, 'DELETE FROM "T x"; DROP TABLE "T x"')
    assert sqlite_db.execute('SELECT COUNT(*) FROM "T x"').rows == [(40,)]


def test_sqlite_temp_table_does_not_fake_the_scored_table(sqlite_db):
    sqlite_db.execute('CREATE TEMP TABLE "T x" (a TEXT, "b c" TEXT)')
    assert len(sqlite_db.read_table("T x", ["a", "b c"])) == 40


# ---------------------------------------------------------------- MariaDB

def test_mariadb_has_no_file_access(mariadb_db, tmp_path: Path):
    assert mariadb_db.execute("SELECT LOAD_FILE('/etc/passwd')").rows == [(None,)]
    for sql in ("SELECT * FROM `T x` INTO OUTFILE '/tmp/agentinstruct-outfile.txt'",
                "SELECT * FROM `T x` INTO DUMPFILE '/tmp/agentinstruct-dumpfile.txt'",
                "LOAD DATA INFILE '/etc/passwd' INTO TABLE `T x`",
                "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE `T x`"):
        refused(mariadb_db, sql)
    assert not Path("/tmp/agentinstruct-outfile.txt").exists()
    assert not Path("/tmp/agentinstruct-dumpfile.txt").exists()
    assert mariadb_db.execute("SELECT COUNT(*) FROM `T x`").rows == [(40,)]


def test_mariadb_sees_and_changes_nothing_else(server, mariadb_db):
    other = server.open([TABLE], None)
    try:
        visible = {r[0] for r in mariadb_db.execute("SHOW DATABASES").rows}
        assert visible == {"information_schema", mariadb_db.db}
        for sql in (f"SELECT * FROM `{other.db}`.`T x`", f"DROP DATABASE `{other.db}`", "SELECT * FROM mysql.user",
                    "CREATE DATABASE stolen", "CREATE USER 'x'@'%'", "GRANT ALL ON *.* TO CURRENT_USER()",
                    "SET GLOBAL max_connections = 1", "SHUTDOWN", "KILL 1"):
            refused(mariadb_db, sql)
        # Dropping everything it can reach drops only its own database.
        mariadb_db.execute(f"DROP DATABASE `{mariadb_db.db}`")
        assert other.execute("SELECT COUNT(*) FROM `T x`").rows == [(40,)]
    finally:
        other.close()


def test_mariadb_stops_long_statements_even_when_told_not_to(mariadb_db):
    started = time.monotonic()
    for sql in ("SELECT SLEEP(30)", "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(30)",
                "SELECT COUNT(*) FROM `T x` a, `T x` b, `T x` c, `T x` d, `T x` e, `T x` f"):
        assert "interrupted" in refused(mariadb_db, sql)
    assert time.monotonic() - started < 12
    assert mariadb_db.execute("SELECT COUNT(*) FROM `T x`").rows == [(40,)]


def test_mariadb_caps_rows_and_runs_one_statement(mariadb_db):
    started = time.monotonic()
    result = mariadb_db.execute("SELECT a.a FROM `T x` a, `T x` b, `T x` c, `T x` d")  # 2.56 million rows
    assert len(result.rows) == LIMITS.max_rows and result.truncated
    assert time.monotonic() - started < 5
    refused(mariadb_db, "DELETE FROM `T x`; DROP TABLE `T x`")
    assert mariadb_db.execute("SELECT COUNT(*) FROM `T x`").rows == [(40,)]


def test_mariadb_cleans_up_databases_and_users(server):
    db = server.open([TABLE], None)
    name = db.db
    db.execute("CREATE TEMPORARY TABLE tmp (x INT)")
    db.close()
    db.close()  # twice is harmless
    with server.admin() as con, con.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (name,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE user = %s", (name,))
        assert cur.fetchone()[0] == 0


def test_leftovers_of_a_dead_build_are_swept_and_a_live_ones_are_not(mariadb):
    live, dead = MariadbBackend(mariadb, LIMITS), MariadbBackend(mariadb, LIMITS)
    kept, orphan = live.open([TABLE], None), dead.open([TABLE], None)
    dead.close()  # what kill -9 does: the owner session is gone, the episode's database and user stay
    try:
        later = MariadbBackend(mariadb, LIMITS)
        assert later.swept == 2  # the orphan's database and user
        assert kept.execute("SELECT COUNT(*) FROM `T x`").rows == [(40,)]
        with later.admin() as con, con.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (orphan.db,))
            assert cur.fetchone()[0] == 0
        later.close()
    finally:
        kept.close()
        live.close()
