"""Command-line entry point: `bouncewise classify` and `bouncewise explain`."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator

import click

from bouncewise import __version__
from bouncewise.classify import Failure, explain
from bouncewise.cli.parallel import classify_items
from bouncewise.config import DEFAULT_LIMITS
from bouncewise.mail.sources import iter_items
from bouncewise.result import FORMATTERS, Result

FORMAT_HELP = "Output format; default: table on a terminal, jsonl otherwise."

# Exit status of a command that stopped on an error of its own rather than on bad input.
EXIT_INTERNAL_ERROR = 2

# Exit status after Ctrl-C, as shells report a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def _guarded(command: Callable) -> Callable:
    """Wrap a command so that no traceback reaches the user unless BOUNCEWISE_TRACEBACK is set."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("bouncewise: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as error:  # noqa: BLE001 - the last line of defence before the user
            if os.environ.get("BOUNCEWISE_TRACEBACK"):
                traceback.print_exc()
            click.echo(f"bouncewise: internal error: {type(error).__name__}: {error} "
                       "(set BOUNCEWISE_TRACEBACK=1 to see the traceback)", err=True)
            sys.exit(EXIT_INTERNAL_ERROR)

    return wrapper


@click.group()
@click.version_option(__version__, prog_name="bouncewise")
def main() -> None:
    """Read mail bounces and SMTP replies, and say per recipient what failed and why."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "output_format", type=click.Choice(sorted(FORMATTERS)), help=FORMAT_HELP)
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes; default: the number of CPUs.")
@_guarded
def classify(paths: tuple[str, ...], output_format: str | None, jobs: int | None) -> None:
    """Classify bounces in files, mbox files, Maildirs, folders, or - for standard input.

    Prints one row per recipient. Inputs that cannot be read are named on standard error, and
    the exit status is then 1; it is 0 when every input was read.
    """
    output_format = output_format or ("table" if sys.stdout.isatty() else "jsonl")
    jobs = jobs or os.cpu_count() or 1
    failures = 0

    def results() -> Iterator[Result]:
        nonlocal failures
        for outcome in classify_items(iter_items(paths, DEFAULT_LIMITS), jobs, DEFAULT_LIMITS):
            if isinstance(outcome, Failure):
                failures += 1
                click.echo(f"bouncewise: {outcome.source}: {outcome.error}", err=True)
                continue
            yield from outcome

    _write(FORMATTERS[output_format](results()))
    sys.exit(1 if failures else 0)


@main.command("explain")
@click.argument("replies", nargs=-1)
@click.option("--format", "output_format", type=click.Choice(["table", "jsonl", "json"]), help=FORMAT_HELP)
@_guarded
def explain_command(replies: tuple[str, ...], output_format: str | None) -> None:
    """Classify SMTP reply lines, as given or one per line on standard input.

    Example: bouncewise explain "550 5.7.1 Message rejected as spam"
    """
    output_format = output_format or ("table" if sys.stdout.isatty() else "jsonl")
    lines = list(replies) or list(_stdin_lines(DEFAULT_LIMITS.max_line_length))

    rows = []
    for reply in lines:
        verdict = explain(reply)
        rows.append({"reply": reply, "reason": verdict.reason, "category": verdict.category,
                     "hard_bounce": verdict.hard_bounce, "status": verdict.status,
                     "reply_code": verdict.reply_code, "advice": verdict.advice})
    _write(_render_explained(rows, output_format))


def _register_commands() -> None:
    # The gate's and the ledger's commands live in their own modules, which import aiosmtpd
    # and SQLAlchemy only when they run.
    from bouncewise.cli.gate import gate_command
    from bouncewise.cli.ledger import ledger_group, verp_group
    main.add_command(gate_command)
    main.add_command(ledger_group)
    main.add_command(verp_group)


_register_commands()


def _stdin_lines(max_length: int) -> Iterator[str]:
    """Yield the non-blank lines of standard input, each cut to `max_length` bytes."""
    stream = sys.stdin.buffer
    while True:
        line = stream.readline(max_length)
        if not line:
            return
        if not line.endswith(b"\n"):
            # Skip the rest of an over-long line instead of reading it as further replies.
            while (rest := stream.readline(max_length)) and not rest.endswith(b"\n"):
                pass
        text = line.decode("utf-8", "replace").strip()
        if text:
            yield text


def _render_explained(rows: list[dict], output_format: str) -> Iterator[str]:
    if output_format == "json":
        yield json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
        return
    if output_format == "jsonl":
        for row in rows:
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    for row in rows:
        bounce = "hard bounce" if row["hard_bounce"] else "not a hard bounce"
        yield (f"{row['reply']}\n  reason: {row['reason']}  category: {row['category']}  "
               f"status: {row['status'] or '-'}  ({bounce})\n  advice: {row['advice']}\n")


def _write(chunks: Iterator[str]) -> None:
    """Write output as it is produced; stop quietly when the reader closes the pipe."""
    try:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at devnull so that flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
