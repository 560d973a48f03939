"""Time the ledger: bounces recorded per second into SQLite and into PostgreSQL, in one process.

    python bench/ledger.py [--corpus FOLDER] [--copies 15] [--postgres URL]

Reads every file of FOLDER (default: ../shared/corpus/bounces beside the repository) and makes
COPIES copies of each, each with an extra header field so that no copy is a duplicate of
another. It records them all with `Intake`, classification included, into a new SQLite
database and then into a new PostgreSQL database on the server at --postgres (default:
127.0.0.1:5432 as user postgres; skipped without a server). It prints bounces per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from bouncewise.ledger.config import parse_config
from bouncewise.ledger.intake import Intake
from bouncewise.ledger.store import Ledger
from bouncewise.mail.sources import Item

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "bounces"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def load_items(corpus: Path, copies: int) -> list[Item]:
    """Return `copies` distinct copies of every file of `corpus` as items."""
    originals = [(path.name, path.read_bytes()) for path in sorted(corpus.iterdir())
                 if path.is_file()]
    return [Item(f"{name}#{copy}", f"X-Bench-Copy: {copy}\n".encode() + data)
            for copy in range(copies) for name, data in originals]


def run(url: str, items: list[Item]) -> tuple[float, str]:
    """Record `items` into the database at `url`; return the seconds taken and the summary."""
    config = parse_config({"ledger": {"database": url}})
    ledger = Ledger(config)
    try:
        intake = Intake(ledger, config)
        started = time.perf_counter()
        intake.ingest_items(items)
        seconds = time.perf_counter() - started
        return seconds, intake.stats.summary()
    finally:
        ledger.close()


def postgres_database(server: str) -> tuple[str, object] | None:
    """Create a scratch database; return its URL and the admin engine, or None without a server."""
    try:
        admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        name = f"bouncewise_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure means: no server to measure
        print(f"PostgreSQL: skipped, no server at {server}: "
              f"{str(error).strip().splitlines()[0]}")
        return None
    return f"{server}/{name}", admin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--copies", type=int, default=15)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="server URL without a database name")
    options = parser.parse_args()
    if not options.corpus.is_dir():
        print(f"bench: corpus folder not found: {options.corpus}", file=sys.stderr)
        return 2

    items = load_items(options.corpus, options.copies)
    print(f"{len(items)} bounces ({options.copies} copies of {len(items) // options.copies} "
          f"files), one process, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory() as folder:
        seconds, summary = run(f"sqlite:///{folder}/ledger.db", items)
        print(f"SQLite:     {len(items) / seconds:7.0f} bounces/s  ({summary})")

    scratch = postgres_database(options.postgres)
    if scratch is not None:
        url, admin = scratch
        try:
            seconds, summary = run(url, items)
            print(f"PostgreSQL: {len(items) / seconds:7.0f} bounces/s  ({summary})")
        finally:
            with admin.connect() as connection:  # type: ignore[attr-defined]
                connection.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" '
                                        f"WITH (FORCE)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
