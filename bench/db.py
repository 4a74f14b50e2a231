"""The databases the bench runs on, seen from outside the server: fresh scratch databases per
scenario (so a re-run starts from nothing and figures are not mixed with other scenarios' rows),
row counts and bytes on disk."""

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse

# The session tables whose growth the refresh design decides.
SESSION_TABLES = ("refresh_families", "refresh_tokens", "audit_events")


def is_sqlite(url):
    return url.startswith("sqlite:")


def sqlite_path(url):
    return url[len("sqlite://"):].split("?")[0]


def psql(url, statement):
    """One statement's rows, `|`-separated, on stdin (a statement may be longer than an argument)."""
    out = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-f", "-"], input=statement,
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: psql failed: {out.stderr.strip()}")
    return [line.split("|") for line in out.stdout.splitlines() if line]


@contextlib.contextmanager
def scratch_database(postgres_url, name):
    """A new, empty database: SQLite in a temporary directory when `postgres_url` is None, else
    `<database>_<name>_<pid>` created on the server of `postgres_url` (which needs CREATEDB) and
    dropped afterwards."""
    if postgres_url is None:
        directory = tempfile.mkdtemp(prefix=f"tokensmith-bench-{name}-")
        try:
            yield f"sqlite://{directory}/bench.db?mode=rwc"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    parts = urllib.parse.urlsplit(postgres_url)
    database = f"{parts.path.lstrip('/') or 'postgres'}_{name}_{os.getpid()}".replace("-", "_")
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))
    psql(postgres_url, f'DROP DATABASE IF EXISTS "{database}"; CREATE DATABASE "{database}"')
    try:
        yield url
    finally:
        psql(postgres_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def query(url, statement):
    """The rows of one statement on the server's database, as strings."""
    if is_sqlite(url):
        db = sqlite3.connect(sqlite_path(url), timeout=30)
        try:
            return [[str(v) for v in row] for row in db.execute(statement).fetchall()]
        finally:
            db.close()
    return psql(url, statement)


def existing_tables(url):
    if is_sqlite(url):
        rows = query(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {row[0] for row in rows}


def row_counts(url, tables=SESSION_TABLES):
    """{table: rows}; None for a table this schema does not have (after issue 18, refresh_tokens)."""
    present = existing_tables(url)
    return {t: int(query(url, f"SELECT count(*) FROM {t}")[0][0]) if t in present else None for t in tables}


def size(url, tables=SESSION_TABLES):
    """Bytes on disk. SQLite: the WAL is checkpointed into the main file and truncated first
    (PRAGMA wal_checkpoint(TRUNCATE)), then `bytes` = main file + WAL; `pages_bytes` = page_count ×
    page_size, `free_bytes` = the free list inside the file. PostgreSQL, as it stands (no VACUUM
    unless the caller ran one): `bytes` = the sum of pg_total_relation_size (heap, indexes, TOAST)
    of the session tables, `database_bytes` = pg_database_size, and the dead tuples the
    statistics collector counts (approximate: its counters lag by up to a second or so)."""
    present = [t for t in tables if t in existing_tables(url)]
    if is_sqlite(url):
        path = sqlite_path(url)
        db = sqlite3.connect(path, timeout=30)
        try:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
        finally:
            db.close()
        files = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        return {"bytes": files, "pages_bytes": pages * page_size, "free_bytes": free * page_size,
                "checkpoint_busy": bool(busy)}
    total = query(url, " UNION ALL ".join(f"SELECT pg_total_relation_size('{t}')" for t in present) or "SELECT 0")
    database = int(query(url, "SELECT pg_database_size(current_database())")[0][0])
    names = ",".join(f"'{t}'" for t in present) or "''"
    dead = query(url, f"SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname IN ({names})")
    return {"bytes": sum(int(r[0]) for r in total), "database_bytes": database, "dead_tuples": int(dead[0][0])}


def vacuum(url, tables=SESSION_TABLES):
    """A plain VACUUM (not FULL: what autovacuum does; it frees space for reuse, rarely returns it)."""
    present = [t for t in tables if t in existing_tables(url)]
    if is_sqlite(url):
        return
    for table in present:
        psql(url, f"VACUUM {table}")


def snapshot(url):
    return {"rows": row_counts(url), **size(url)}
