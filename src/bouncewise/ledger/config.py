"""Settings of the ledger, read from a TOML file, each with a safe default.

    [ledger]
    database = "postgresql+psycopg://ledger@db.example.org/bounces"

    [verp]
    secret = "a long random string"
    domain = "bounce.example.org"

    [notify.mail]
    relay = "127.0.0.1:25"
    sender = "postmaster@example.org"

Without a file the ledger keeps an SQLite database in the current folder and sends no notices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bouncewise.settings import ConfigError, build_settings, load_toml, reject_unknown

__all__ = ["LedgerConfig", "StoreSettings", "VerpSettings", "PolicySettings", "NotifySettings",
           "MailSettings", "WebhookSettings", "ImapSettings", "load_config", "parse_config"]

DEFAULT_DATABASE = "sqlite:///bouncewise-ledger.db"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The `[ledger]` table."""

    # SQLAlchemy database URL: sqlite:///PATH, or postgresql+psycopg://USER@HOST/DB.
    database: str = DEFAULT_DATABASE

    # Messages recorded per database transaction while ingesting a batch.
    batch_size: int = 200

    # Seconds between looks at a Maildir or IMAP mailbox with --follow.
    follow_interval: float = 10.0

    # Bytes read of one message; the rest is cut, and the message is classified from its
    # start, where a bounce puts its report.
    max_message_size: int = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VerpSettings:
    """The `[verp]` table: how return paths are made and checked."""

    # Key that signs the tokens. Empty: VERP is off, and tokens in bounces are not trusted.
    secret: str = ""

    # Earlier keys, still accepted when checking, so that a key can be changed.
    old_secrets: tuple[str, ...] = ()

    # Domain of the return paths; its mail must reach the ledger.
    domain: str = ""

    # Local part before the "+" and the token.
    prefix: str = "bounces"


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The `[policy]` table: when an address is suppressed, by category."""

    # Hard bounces (bad-address) after which an address is suppressed.
    bad_address_bounces: int = 1

    # Soft-bounce score at which an address is suppressed. A mailbox-unavailable bounce adds
    # 1, a transient one `transient_weight`, at most once per day, as Mailman counts.
    soft_score_threshold: float = 5.0
    transient_weight: float = 0.5

    # Days the soft bounces must span before the score can suppress, so that one bad night
    # of a receiving server does not cost a reader.
    soft_min_days: int = 3

    # Days without a soft bounce after which the score starts again from zero: the address
    # has recovered. A delivery report resets the score at once.
    score_stale_days: int = 7

    # Suppress at once on a complaint (the recipient asked not to be mailed).
    suppress_complaints: bool = True


@dataclass(frozen=True, slots=True)
class MailSettings:
    """The `[notify.mail]` table: notices to senders by mail."""

    # SMTP relay as HOST:PORT. Empty: no notices by mail.
    relay: str = ""

    # Address the notices come from.
    sender: str = "postmaster@localhost"

    # Seconds to wait for the relay.
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The `[notify.webhook]` table: notices to the application by HTTP POST."""

    # URL that receives the JSON notices. Empty: no webhook.
    url: str = ""

    # Key of the HMAC-SHA256 signature in the X-Bouncewise-Signature header.
    secret: str = ""

    # Seconds to wait for the endpoint.
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The `[notify]` table: which refusals the sender is notified of, and how often."""

    # Categories of failure that the sender is notified of.
    categories: tuple[str, ...] = ("spam-block", "virus", "sender-config")

    # Seconds: at most one notice per sender (or application tag) and channel in this time.
    interval: float = 3600.0

    # Delivery attempts of one notice before it is given up and recorded as such.
    max_attempts: int = 8

    # Seconds before the first retry; each further retry waits twice as long.
    retry_base: float = 60.0


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """The `[imap]` table: a mailbox that receives bounces, read with `ingest --imap`."""

    host: str = ""
    # 0: 993 with `security = "tls"`, 143 otherwise.
    port: int = 0
    # "tls" (implicit TLS), "starttls", or "none" (only for a server on this machine).
    security: str = "tls"
    user: str = ""
    password: str = ""
    # A file whose first line is the password, kept out of the configuration file.
    password_file: str = ""
    mailbox: str = "INBOX"
    # Keyword set on each recorded message, so that it is not read again.
    done_keyword: str = "$Bouncewise"
    # Folder that recorded messages are moved to; empty: they stay, with the keyword set.
    move_to: str = ""
    # Seconds to wait for the server.
    timeout: float = 60.0


@dataclass(frozen=True)
class LedgerConfig:
    """Everything the ledger reads from its configuration file."""

    store: StoreSettings = field(default_factory=StoreSettings)
    verp: VerpSettings = field(default_factory=VerpSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    mail: MailSettings = field(default_factory=MailSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)


def _is_host_port(text: str) -> bool:
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def load_config(path: str | None) -> LedgerConfig:
    """Read the configuration file at `path`; with None, return the defaults."""
    return load_toml(path, parse_config)


def parse_config(data: dict[str, Any]) -> LedgerConfig:
    """Build the configuration from the parsed TOML document."""
    reject_unknown(data, ("ledger", "verp", "policy", "notify", "imap"), "top level")
    notify_table = dict(data.get("notify", {}))
    mail_table = notify_table.pop("mail", {})
    webhook_table = notify_table.pop("webhook", {})

    config = LedgerConfig(
        store=build_settings(StoreSettings, data.get("ledger", {}), "[ledger]"),
        verp=build_settings(VerpSettings, data.get("verp", {}), "[verp]"),
        policy=build_settings(PolicySettings, data.get("policy", {}), "[policy]"),
        notify=build_settings(NotifySettings, notify_table, "[notify]"),
        mail=build_settings(MailSettings, mail_table, "[notify.mail]"),
        webhook=build_settings(WebhookSettings, webhook_table, "[notify.webhook]"),
        imap=build_settings(ImapSettings, data.get("imap", {}), "[imap]"),
    )
    if config.imap.security not in ("tls", "starttls", "none"):
        raise ConfigError(f"[imap] security must be tls, starttls or none, not "
                          f"{config.imap.security!r}")
    if config.verp.secret and not config.verp.domain:
        raise ConfigError("[verp] secret is set but domain is not: the return paths need one")
    if config.mail.relay and not _is_host_port(config.mail.relay):
        raise ConfigError(f"[notify.mail] relay must be HOST:PORT, such as 127.0.0.1:25, not "
                          f"{config.mail.relay!r}")
    if config.webhook.url and not config.webhook.url.startswith(("http://", "https://")):
        raise ConfigError(f"[notify.webhook] url must start with http:// or https://, not "
                          f"{config.webhook.url!r}")
    return config
