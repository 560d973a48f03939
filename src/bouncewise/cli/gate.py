"""`bouncewise gate`: run the SMTP gate in front of a next hop."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from bouncewise.classify import explain
from bouncewise.gate.config import ConfigError, GateConfig, load_config
from bouncewise.gate.events import DecisionLog, JsonLogFormatter
from bouncewise.gate.scanners import parse_address

# Replies whose reading by the classifier must match their purpose.
_EXPECTED_READINGS = {"spam": "spamdetected", "virus": "virusdetected"}


def _address(text: str, option: str) -> tuple[str, int]:
    try:
        return parse_address(text, 0)
    except ValueError as error:
        raise click.BadParameter(f"invalid address {text!r}: expected HOST:PORT, such as "
                                 f"127.0.0.1:10025 or [::1]:10025", param_hint=option) from error


@click.command("gate")
@click.option("--listen", metavar="HOST:PORT",
              help="Address to accept SMTP on, such as 127.0.0.1:10025 or [::1]:10025.")
@click.option("--next-hop", metavar="HOST:PORT",
              help="The only server mail is relayed to, such as Postfix's after-filter "
                   "smtpd at 127.0.0.1:10026.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML configuration file; default: the built-in scanner only.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="One line per decision: key=value text as Postfix writes, or JSON.")
@click.option("--metrics", metavar="HOST:PORT", default=None,
              help="Serve Prometheus counters at http://HOST:PORT/metrics.")
@click.option("--check-config", is_flag=True,
              help="Read the configuration, show how the reply texts are read, and exit.")
def gate_command(listen: str | None, next_hop: str | None, config_path: str | None,
                 log_format: str, metrics: str | None, check_config: bool) -> None:
    """Refuse spam and viruses during the SMTP session, and relay clean mail to the next hop.

    Each message is read whole and scanned before the client gets a reply. A rejection names
    the reason. A scanner or next-hop failure is a 4xx, so the client retries. 250 comes only
    once the next hop has taken the message.
    """
    try:
        config = load_config(config_path)
    except ConfigError as error:
        click.echo(f"bouncewise gate: {error}", err=True)
        sys.exit(2)
    if check_config:
        sys.exit(_check(config))

    if not listen or not next_hop:
        raise click.UsageError("--listen and --next-hop are required to run the gate")
    listen_address = _address(listen, "--listen")
    next_hop_address = _address(next_hop, "--next-hop")
    metrics_address = _address(metrics, "--metrics") if metrics else None

    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("bouncewise-gate: %(message)s"))
    gate_logger = logging.getLogger("bouncewise.gate")
    gate_logger.addHandler(handler)
    gate_logger.setLevel(logging.INFO)
    # aiosmtpd logs every command at INFO; its warnings and errors are still worth seeing.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("mail.log").addHandler(handler)
    for kind, reading, expected in _misread_replies(config):
        gate_logger.warning("reply %r is read as %s, not %s, by bouncewise: the sender's "
                            "server may not tell its user the real reason", kind, reading,
                            expected)

    try:
        log = DecisionLog(config.settings.decisions_file)
    except OSError as error:
        click.echo(f"bouncewise gate: cannot open decisions file "
                   f"{config.settings.decisions_file}: {error.strerror}", err=True)
        sys.exit(2)

    # Imported here so that the other commands do not load aiosmtpd.
    from bouncewise.gate.server import ListenError, serve
    try:
        asyncio.run(serve(config, listen_address, next_hop_address, log, metrics_address))
    except ListenError as error:
        click.echo(f"bouncewise gate: {error}", err=True)
        sys.exit(2)


def _misread_replies(config: GateConfig) -> list[tuple[str, str, str]]:
    """Return (kind, reading, expected) for each refusal reply the classifier misreads."""
    misread = []
    for kind, expected in _EXPECTED_READINGS.items():
        reading = explain(_sample_reply(config, kind)).reason
        if reading != expected:
            misread.append((kind, reading, expected))
    return misread


def _sample_reply(config: GateConfig, kind: str) -> str:
    limit = (config.settings.max_recipients if kind == "recipients"
             else config.settings.max_line_length if kind == "line_too_long"
             else config.settings.max_message_size)
    return config.replies.render(kind, ref="0123456789", virus="Eicar-Test-Signature",
                                 limit=limit, score="9.0", threshold="5.0", scanner="spamd",
                                 hostname=config.settings.hostname)


def _check(config: GateConfig) -> int:
    """Print each reply and its reading by the classifier; return 1 if a reading is wrong."""
    wrong = 0
    for kind in ("spam", "virus", "size", "line_too_long", "recipients", "scanner_failure",
                 "next_hop_failure", "internal_error"):
        reply = _sample_reply(config, kind)
        verdict = explain(reply)
        expected = _EXPECTED_READINGS.get(kind)
        mark = "ok" if expected in (None, verdict.reason) else f"WRONG, expected {expected}"
        wrong += mark != "ok"
        click.echo(f"{kind}: {reply}\n  read as {verdict.reason} ({verdict.category}): {mark}")
    click.echo("scanners: " + ", ".join(f"{scanner.name} (timeout {scanner.timeout:g} s)"
                                        for scanner in config.scanners))
    return 1 if wrong else 0
