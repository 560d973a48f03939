"""`bouncewise ledger` and `bouncewise verp`: bounce bookkeeping for an application that sends mail.

`ledger ingest` exits 0 when every message was recorded; an unreadable one is recorded as such.
It exits 75 (EX_TEMPFAIL) when the database or the configuration cannot be used, so that a
Postfix pipe transport keeps the message and retries.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC

import click

from bouncewise.ledger import verp
from bouncewise.ledger.config import LedgerConfig, load_config
from bouncewise.settings import ConfigError

# sysexits.h: a temporary failure; Postfix's pipe transport defers the message and retries.
EX_TEMPFAIL = 75

_LOG_FORMAT = "bouncewise-ledger: %(message)s"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    logger = logging.getLogger("bouncewise.ledger")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _fail(message: str, status: int) -> None:
    click.echo(f"bouncewise ledger: {message}", err=True)
    sys.exit(status)


def _config(context: click.Context) -> LedgerConfig:
    config: LedgerConfig = context.obj["config"]
    return config


def _open(context: click.Context, create: bool = False):
    """Open the ledger, or exit 75 with one line naming the database and the cause.

    Only `ingest` creates a ledger; the other commands need an existing one.
    """
    from bouncewise.ledger.store import Ledger, LedgerUnavailable

    try:
        return Ledger(_config(context), context.obj["database"], create=create)
    except LedgerUnavailable as error:
        _fail(f"{error}; nothing was recorded" if create else str(error), EX_TEMPFAIL)


@click.group("ledger")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              envvar="BOUNCEWISE_LEDGER_CONFIG",
              help="TOML configuration file (or $BOUNCEWISE_LEDGER_CONFIG).")
@click.option("--database", default=None, envvar="BOUNCEWISE_LEDGER_DATABASE",
              help="Database URL, overriding the configuration: sqlite:///PATH or "
                   "postgresql+psycopg://USER@HOST/DB (or $BOUNCEWISE_LEDGER_DATABASE).")
@click.pass_context
def ledger_group(context: click.Context, config_path: str | None, database: str | None) -> None:
    """Record bounces per recipient, suppress dead addresses, and tell senders about refusals."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        _fail(str(error), EX_TEMPFAIL)
    context.obj = {"config": config, "database": database}
    _setup_logging()


@ledger_group.command("ingest")
@click.argument("paths", nargs=-1)
@click.option("--follow", is_flag=True,
              help="Keep watching: Maildir folders and --imap are read again every "
                   "follow_interval seconds.")
@click.option("--imap", "use_imap", is_flag=True, help="Read the [imap] mailbox of the configuration.")
@click.option("--envelope-to", default="",
              help="Address the message was delivered to, for VERP (Postfix pipe: "
                   "${original_recipient}).")
@click.option("--no-notify", is_flag=True, help="Queue notices but do not send them now.")
@click.pass_context
def ingest_command(context: click.Context, paths: tuple[str, ...], follow: bool, use_imap: bool,
                   envelope_to: str, no_notify: bool) -> None:
    """Record bounces from files, mbox files, Maildirs, folders, - (standard input) or IMAP.

    A Maildir's messages are marked seen (moved to cur/ with the S flag) once recorded; other
    files are only read. The same bounce recorded twice counts once.
    """
    from bouncewise.ledger.imap import ImapError
    from bouncewise.ledger.intake import Intake, maildir_pending
    from bouncewise.ledger.store import LedgerUnavailable

    if not paths and not use_imap:
        raise click.UsageError("name at least one PATH, - for standard input, or --imap")
    config = _config(context)
    maildirs = [path for path in paths if _is_maildir(path)]
    others = [path for path in paths if path not in maildirs]
    if follow and others:
        raise click.UsageError(f"--follow reads only Maildir folders and --imap, not "
                               f"{others[0]!r}")

    ledger = _open(context, create=True)
    intake = Intake(ledger, config)

    def once() -> None:
        if others:
            intake.ingest_paths(others, envelope_to)
        for maildir in maildirs:
            files = list(maildir_pending(maildir))
            intake.ingest_items(_file_items(files, intake), envelope_to,
                                committed=_mark_batch_seen)
        if use_imap:
            from bouncewise.ledger.imap import ingest_imap

            ingest_imap(intake, config.imap)
        if not no_notify:
            _deliver(ledger, config)

    # A service manager stops --follow with SIGTERM; finish like Ctrl-C, with the summary.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        once()
        while follow:
            time.sleep(config.store.follow_interval)
            once()
    except LedgerUnavailable as error:
        _fail(f"{error}; messages not yet recorded are left where they were", EX_TEMPFAIL)
    except ImapError as error:
        _fail(f"{error}; messages not yet recorded stay in the mailbox", EX_TEMPFAIL)
    except KeyboardInterrupt:
        click.echo("bouncewise ledger: interrupted", err=True)
    finally:
        click.echo(intake.stats.summary(), err=True)
        ledger.close()


def _interrupt(signal_number, frame) -> None:
    raise KeyboardInterrupt


def _mark_batch_seen(batch) -> None:
    from bouncewise.ledger.intake import mark_seen

    for item in batch:
        mark_seen(item.source)


def _is_maildir(path: str) -> bool:
    return path != "-" and all(os.path.isdir(os.path.join(path, name))
                               for name in ("cur", "new", "tmp"))


def _file_items(files: list[str], intake):
    from bouncewise.mail.sources import iter_items

    for path in files:
        yield from iter_items(path, intake.limits)


def _deliver(ledger, config: LedgerConfig) -> None:
    if not (config.mail.relay or config.webhook.url):
        return
    from bouncewise.ledger.notify import deliver_due

    deliver_due(ledger, config)


@ledger_group.command("notify")
@click.pass_context
def notify_command(context: click.Context) -> None:
    """Send the notices that are due, retrying failed ones whose wait has passed."""
    from bouncewise.ledger.notify import deliver_due

    ledger = _open(context)
    try:
        stats = deliver_due(ledger, _config(context))
        click.echo(f"notify: sent={stats.sent} failed={stats.failed} "
                   f"given_up={stats.given_up}", err=True)
    finally:
        ledger.close()


@ledger_group.command("status")
@click.argument("address")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def status_command(context: click.Context, address: str, output_format: str) -> None:
    """Show a recipient's history, its state, and the decision with its reason."""
    ledger = _open(context)
    try:
        state, events = ledger.status(address)
    finally:
        ledger.close()
    if state is None:
        _fail(f"{address}: no bounces recorded for this address", 1)

    if output_format == "json":
        click.echo(json.dumps({"recipient": _state_dict(state),
                               "events": [_event_dict(event) for event in events]}, indent=2))
        return
    click.echo(_state_text(state))
    click.echo("history:")
    for event in events:
        click.echo(f"  {_when(event.occurred_at)}  {event.reason:<15} {event.category:<20} "
                   f"{_short(event.diagnostic, 70)}")
        click.echo(f"      -> {event.decision}")


@ledger_group.command("suppressed")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json"]),
              default="table")
@click.pass_context
def suppressed_command(context: click.Context, output_format: str) -> None:
    """List the suppressed addresses, with when and why."""
    ledger = _open(context)
    try:
        rows = [{"address": state.address, "since": _when(state.suppressed_at),
                 "reason": state.last_reason, "tag": state.last_tag,
                 "why": state.suppressed_reason}
                for state in ledger.suppressed()]
    finally:
        ledger.close()

    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
    elif output_format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["address", "since", "reason", "tag", "why"])
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        for row in rows:
            tag = f" [{row['tag']}]" if row["tag"] else ""
            click.echo(f"{row['address']:<40} {row['since']:<21} {row['why']}{tag}")


@ledger_group.command("unsuppress")
@click.argument("address")
@click.pass_context
def unsuppress_command(context: click.Context, address: str) -> None:
    """Lift the suppression of an address, for example after the recipient asked to be mailed."""
    ledger = _open(context)
    try:
        lifted = ledger.unsuppress(address)
    finally:
        ledger.close()
    if not lifted:
        _fail(f"{address}: not suppressed", 1)
    click.echo(f"{address}: suppression lifted")


_VERP_CONFIG_HELP = "TOML configuration with a [verp] table (or $BOUNCEWISE_LEDGER_CONFIG)."


@click.group("verp")
def verp_group() -> None:
    """Make and check signed VERP return paths."""


def _verp_config(config_path: str | None) -> LedgerConfig:
    try:
        config = load_config(config_path)
    except ConfigError as error:
        _fail(str(error), 2)
    if not config.verp.secret:
        _fail("no [verp] secret in the configuration: give --config FILE", 2)
    return config


@verp_group.command("encode")
@click.argument("recipient")
@click.option("--tag", default="", help="Application tag, such as a user or object id.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              envvar="BOUNCEWISE_LEDGER_CONFIG", help=_VERP_CONFIG_HELP)
def verp_encode_command(recipient: str, tag: str, config_path: str | None) -> None:
    """Print the return path for mail to RECIPIENT."""
    config = _verp_config(config_path)
    try:
        click.echo(verp.encode(recipient, config.verp.secret, config.verp.domain, tag,
                               config.verp.prefix))
    except verp.VerpError as error:
        _fail(str(error), 2)


@verp_group.command("decode")
@click.argument("address")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              envvar="BOUNCEWISE_LEDGER_CONFIG", help=_VERP_CONFIG_HELP)
def verp_decode_command(address: str, config_path: str | None) -> None:
    """Check a return path's signature and print its recipient and tag."""
    config = _verp_config(config_path)
    try:
        token = verp.decode(address, [config.verp.secret, *config.verp.old_secrets],
                            config.verp.prefix)
    except verp.VerpError as error:
        _fail(str(error), 1)
    click.echo(json.dumps({"recipient": token.recipient, "tag": token.tag}))


def _state_text(state) -> str:
    tag = f" (tag {state.last_tag})" if state.last_tag else ""
    if state.suppressed:
        head = f"{state.address}: suppressed since {_when(state.suppressed_at)}: " \
               f"{state.suppressed_reason.removeprefix('suppressed: ')}"
    else:
        head = f"{state.address}: not suppressed"
    head += tag
    counts = ", ".join(f"{name} {count}" for name, count in sorted((state.counts or {}).items()))
    return "\n".join([
        head,
        f"  seen: {_when(state.first_seen)} to {_when(state.last_seen)}; {counts}",
        f"  soft-bounce score: {state.bounce_score:g}",
        f"  last: {state.last_reason} ({state.last_category}): {_short(state.last_reply, 90)}",
    ])


def _state_dict(state) -> dict:
    return {"address": state.address, "suppressed": state.suppressed,
            "suppressed_reason": state.suppressed_reason,
            "suppressed_at": _when(state.suppressed_at), "first_seen": _when(state.first_seen),
            "last_seen": _when(state.last_seen), "counts": state.counts,
            "bounce_score": state.bounce_score, "last_tag": state.last_tag,
            "last_reason": state.last_reason,
            "last_category": state.last_category, "last_reply": state.last_reply}


def _event_dict(event) -> dict:
    return {"occurred_at": _when(event.occurred_at), "reason": event.reason,
            "category": event.category, "hard_bounce": event.hard_bounce,
            "status": event.status, "reply_code": event.reply_code,
            "diagnostic": event.diagnostic, "remote_mta": event.remote_mta,
            "sender": event.sender, "tag": event.tag, "decision": event.decision}


def _when(moment) -> str:
    """Return a stored time as ISO 8601 in UTC; SQLite returns it without a zone, in UTC."""
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


COMMANDS: list[Callable] = [ledger_group, verp_group]
