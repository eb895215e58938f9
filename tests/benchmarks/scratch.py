"""A scratch database for a benchmark script: a SQLite file, or a database on a PostgreSQL server."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator


class ScratchDatabaseError(RuntimeError):
    """The URL names neither SQLite nor PostgreSQL."""


@contextlib.contextmanager
def scratch_database(url: str | None, label: str) -> Iterator[str]:
    """A database URL for one run: a SQLite file when ``url`` is empty or SQLite, else a new
    database on ``url``'s PostgreSQL server named after ``label``; dropped afterwards."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/{label}.sqlite3"
        return
    if not url.startswith(("postgres://", "postgresql://")):
        raise ScratchDatabaseError("runs on PostgreSQL (DATABASE_URL=postgres://...) or SQLite (DATABASE_URL unset)")
    import psycopg

    server = url.replace("postgres://", "postgresql://", 1)
    name = f"dn_{label}_{os.getpid()}"

    def execute(sql: str) -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql)

    execute(f'DROP DATABASE IF EXISTS "{name}"')
    execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        from django.db import connections

        connections.close_all()
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
