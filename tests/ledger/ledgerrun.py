"""Databases for the ledger's tests: SQLite in a temporary folder, and a fresh database on the
PostgreSQL server at 127.0.0.1:5432, created for the test and dropped after it.

The PostgreSQL tests skip, saying why, where no server runs there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from bouncewise.ledger.config import LedgerConfig, StoreSettings, parse_config

# The server the PostgreSQL tests use; BOUNCEWISE_TEST_POSTGRES overrides it (loopback only).
POSTGRES_SERVER = os.environ.get("BOUNCEWISE_TEST_POSTGRES",
                                 "postgresql+psycopg://postgres@127.0.0.1:5432")


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'ledger.db'}"


def postgres_skip_reason() -> str | None:
    """Return why PostgreSQL tests cannot run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed: pip install 'bouncewise[postgresql]'"
    try:
        engine = create_engine(f"{POSTGRES_SERVER}/postgres", connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except SQLAlchemyError as error:
        first = str(getattr(error, "orig", error)).strip().splitlines()[0]
        return f"no PostgreSQL server at {POSTGRES_SERVER}: {first}"
    return None


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty database, yield its URL, and drop it afterwards."""
    name = f"bouncewise_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """Yield a database URL of each kind; PostgreSQL skips where no server runs."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    reason = postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    with postgres_database() as url:
        yield url


def config_for(url: str, **tables) -> LedgerConfig:
    """Return a configuration for `url` with the given TOML tables, such as verp={...}."""
    data = {name: dict(table) for name, table in tables.items()}
    data.setdefault("ledger", {})["database"] = url
    return parse_config(data)


__all__ = ["database_url", "sqlite_url", "postgres_database", "postgres_skip_reason",
           "config_for", "StoreSettings"]
