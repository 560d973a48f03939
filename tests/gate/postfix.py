"""A private Postfix instance on loopback for tests, in two shapes with the gate in the mail path.

`RelayPostfix` relays all mail to the gate as its relayhost, and sends mail for one sender domain
to an SMTP sink, so the bounces that Postfix writes when the gate rejects a message reach the
sink. `ProxyPostfix` is the before-queue proxy of SMTPD_PROXY_README (postfix-doc 3.7.11): one
smtpd passes each SMTP session to the gate with smtpd_proxy_filter, and a second smtpd receives
what the gate accepts and queues it for the sink.

Each instance has its own config_directory, queue_directory, data_directory and maillog_file
under one directory, and is driven with `postfix -c`, so the system's /etc/postfix and its
instance are never used. Starting a master takes root, and the directory must be searchable by
the postfix user, because the master opens its lock file in data_directory by absolute path
after dropping privileges. Postfix 3.6 or later is needed for compatibility_level 3.6 and for
logging to a file through postlogd.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import pwd
import re
import signal
import smtplib
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

LOG = logging.getLogger(__name__)

POSTFIX_COMMAND = Path("/usr/sbin/postfix")
POSTQUEUE_COMMAND = Path("/usr/sbin/postqueue")
POSTCONF_COMMAND = Path("/usr/sbin/postconf")
INSTALL_HINT = "postfix not installed: apt-get install postfix"
MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
MINIMUM_VERSION = (3, 6)
COMPATIBILITY_LEVEL = "3.6"

LOOPBACK = "127.0.0.1"
HOSTNAME = "mta.postfix.test"
# EHLO name of the test client. Setting it keeps smtplib from calling socket.getfqdn(), which
# would query DNS.
CLIENT_HOSTNAME = "client.test"

# Bounds for waiting on Postfix. They only stop a hung step: `postfix start` took about 2.5 s
# and a stop about 0.1 s on a 2-CPU test machine with Postfix 3.7.11.
COMMAND_TIMEOUT_SECONDS = 60.0
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
WAIT_TIMEOUT_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.05
SMTP_TIMEOUT_SECONDS = 30.0

# Retry and lifetime settings that make a deferred message come back within seconds. Postfix
# accepts 1s as its smallest time value.
FAST_QUEUE_SETTINGS: Mapping[str, str] = {
    "queue_run_delay": "1s",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "maximal_queue_lifetime": "1h",
    "bounce_queue_lifetime": "1h",
    "delay_warning_time": "0h",
}

# The internal services of Debian's master.cf for Postfix 3.7, with chroot off, and without
# local, virtual, lmtp, tlsmgr and the pipe transports, which these instances never use.
# Columns: service type private unpriv chroot wakeup maxproc command.
INTERNAL_SERVICES = """\
pickup     unix       n - n 60    1 pickup
cleanup    unix       n - n -     0 cleanup
qmgr       unix       n - n 300   1 qmgr
rewrite    unix       - - n -     - trivial-rewrite
bounce     unix       - - n -     0 bounce
defer      unix       - - n -     0 bounce
trace      unix       - - n -     0 bounce
verify     unix       - - n -     1 verify
flush      unix       n - n 1000? 0 flush
proxymap   unix       - - n -     - proxymap
proxywrite unix       - - n -     1 proxymap
smtp       unix       - - n -     - smtp
relay      unix       - - n -     - smtp
showq      unix       n - n -     - showq
error      unix       - - n -     - error
retry      unix       - - n -     - error
discard    unix       - - n -     - discard
anvil      unix       - - n -     1 anvil
scache     unix       - - n -     1 scache
postlog    unix-dgram n - n -     1 postlogd
"""

QUEUED_AS = re.compile(rb"queued as ([0-9A-Za-z]+)")
VERSION = re.compile(r"^(\d+)\.(\d+)")

Value = TypeVar("Value")


class PostfixError(RuntimeError):
    """Raised when a Postfix command fails or the instance cannot be set up."""


def postfix_version() -> tuple[int, int] | None:
    """Return the installed Postfix's (major, minor) version, or None if postconf cannot tell."""
    try:
        completed = subprocess.run([str(POSTCONF_COMMAND), "-d", "-h", "mail_version"],
                                   capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
                                   check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = VERSION.match(completed.stdout.strip())
    if completed.returncode != 0 or match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def postfix_missing_reason() -> str | None:
    """Return why a private Postfix cannot run here, as a pytest skip reason, or None."""
    if not POSTFIX_COMMAND.exists():
        return INSTALL_HINT
    if os.geteuid() != 0:
        return "postfix tests need root: the Postfix master must start as root"
    try:
        pwd.getpwnam(MAIL_OWNER)
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        return (f"postfix user {MAIL_OWNER} or group {SETGID_GROUP} not found: "
                f"apt-get install --reinstall postfix")

    version = postfix_version()
    if version is None:
        return f"postfix version unknown: {POSTCONF_COMMAND} -d mail_version failed"
    if version < MINIMUM_VERSION:
        return (f"postfix {version[0]}.{version[1]} is too old: the harness needs "
                f"{MINIMUM_VERSION[0]}.{MINIMUM_VERSION[1]} or later")
    return None


@dataclass(frozen=True)
class QueuedRecipient:
    """One recipient of a queued message and the reason Postfix stores for its delay."""

    address: str
    delay_reason: str


@dataclass(frozen=True)
class QueuedMessage:
    """One message in the Postfix queue, as postqueue lists it."""

    queue_id: str
    # "incoming", "active", "deferred", "hold" or "maildrop" from postqueue -j. The -p listing
    # only marks active (*) and hold (!) messages, so the others are read as "deferred".
    queue_name: str
    sender: str
    message_size: int
    recipients: tuple[QueuedRecipient, ...]
    # Seconds since the epoch. None when read from the -p listing, which omits the year.
    arrival_time: int | None = None

    @property
    def delay_reasons(self) -> list[str]:
        return [recipient.delay_reason for recipient in self.recipients if recipient.delay_reason]


def parse_queue_json(text: str) -> list[QueuedMessage]:
    """Parse the output of `postqueue -j`: one JSON object per line and message."""
    messages = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        recipients = tuple(QueuedRecipient(address=recipient["address"],
                                           delay_reason=recipient.get("delay_reason", ""))
                           for recipient in record.get("recipients", []))
        messages.append(QueuedMessage(queue_id=record["queue_id"], queue_name=record["queue_name"],
                                      sender=record.get("sender", ""),
                                      message_size=int(record.get("message_size", 0)),
                                      recipients=recipients,
                                      arrival_time=record.get("arrival_time")))
    return messages


LISTING_MESSAGE = re.compile(r"^(?P<queue_id>[0-9A-Za-z]+)(?P<mark>[*!]?)\s+(?P<size>\d+)\s+"
                             r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d\s+(?P<sender>\S*)$")
LISTING_REASON = re.compile(r"^\s+\((?P<reason>.*)\)$")
LISTING_RECIPIENT = re.compile(r"^\s+(?P<address>\S+)$")
LISTING_QUEUE_NAMES = {"*": "active", "!": "hold", "": "deferred"}


def parse_queue_listing(text: str) -> list[QueuedMessage]:
    """Parse the output of `postqueue -p`, for Postfix versions without `postqueue -j`.

    A reason line applies to the recipient lines below it, up to the next reason line.
    """
    messages: list[QueuedMessage] = []
    current: dict | None = None
    reason = ""

    def finish() -> None:
        if current is not None:
            messages.append(QueuedMessage(recipients=tuple(current.pop("recipients")), **current))

    for line in text.splitlines():
        message_match = LISTING_MESSAGE.match(line)
        if message_match:
            finish()
            current = {"queue_id": message_match["queue_id"],
                       "queue_name": LISTING_QUEUE_NAMES[message_match["mark"]],
                       "sender": message_match["sender"],
                       "message_size": int(message_match["size"]), "recipients": []}
            reason = ""
            continue
        if current is None:
            continue

        reason_match = LISTING_REASON.match(line)
        recipient_match = LISTING_RECIPIENT.match(line)
        if reason_match:
            reason = reason_match["reason"]
        elif recipient_match:
            current["recipients"].append(QueuedRecipient(recipient_match["address"], reason))
        elif not line.strip():
            finish()
            current = None
    finish()
    return messages


def wait_for_smtp_greeting(port: int, deadline: float, host: str = LOOPBACK) -> None:
    """Connect to host:port until the server sends a 220 greeting, then send QUIT.

    Raises TimeoutError naming the port and the last error when `deadline` (time.monotonic())
    passes first.
    """
    last_error = "no attempt"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as connection:
                greeting = connection.makefile("rb").readline()
                if greeting.startswith(b"220"):
                    connection.sendall(b"QUIT\r\n")
                    return
                last_error = f"unexpected greeting {greeting!r}"
        except OSError as error:
            last_error = str(error)
        time.sleep(POLL_INTERVAL_SECONDS)
    raise TimeoutError(f"SMTP server on {host}:{port} sent no 220 greeting: {last_error}")


def _searchable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """Tell whether a user with `uid` and groups `gids` may enter directory `path`."""
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in gids:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _process_session(pid: int) -> tuple[str, int] | None:
    """Return (state, session id) of a process from /proc, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[3])


def _process_environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {name: value for name, _, value in pairs}


class PostfixInstance:
    """A private Postfix instance under `directory`, with one SMTP listener on 127.0.0.1.

    Subclasses choose where mail goes (`shape_settings`) and which smtpd listeners exist
    (`listener_services`). `settings` overrides or adds main.cf parameters.
    """

    def __init__(self, directory: Path, *, smtp_port: int, sink_port: int,
                 settings: Mapping[str, str] | None = None) -> None:
        self.root = Path(directory).resolve()
        self.smtp_port = smtp_port
        self.sink_port = sink_port
        self.extra_settings = dict(settings or {})
        self.config_directory = self.root / "etc"
        self.queue_directory = self.root / "queue"
        self.data_directory = self.root / "data"
        self.log_file = self.root / "maillog"

    # Configuration.

    def shape_settings(self) -> dict[str, str]:
        raise NotImplementedError

    def listener_services(self) -> list[str]:
        raise NotImplementedError

    def listen_ports(self) -> list[int]:
        return [self.smtp_port]

    def main_settings(self) -> dict[str, str]:
        """Return the main.cf parameters: the common ones, the shape's, then `settings`."""
        common = {
            "compatibility_level": COMPATIBILITY_LEVEL,
            "queue_directory": str(self.queue_directory),
            "data_directory": str(self.data_directory),
            "mail_owner": MAIL_OWNER,
            "setgid_group": SETGID_GROUP,
            "myhostname": HOSTNAME,
            "mydomain": "postfix.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "relay_domains": "",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_banner": "$myhostname ESMTP $mail_name",
            # No DNS anywhere: every next hop is a bracketed IP address, client names are not
            # looked up, and the SMTP client never asks DNS.
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            # Each delivery opens its own connection, so a reply change in a stand-in server
            # applies to the next message and stop() finds no cached connection.
            "smtp_connection_cache_on_demand": "no",
            "in_flow_delay": "0s",
            # Nothing is delivered locally, so mail for a local address bounces with 5.1.1
            # instead of reaching a mailbox.
            "local_transport": "error:5.1.1 local delivery is disabled in this test instance",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "maillog_file": str(self.log_file),
            # postlogd opens only paths under these prefixes.
            "maillog_file_prefixes": str(self.root),
            **FAST_QUEUE_SETTINGS,
        }
        return {**common, **self.shape_settings(), **self.extra_settings}

    def master_entries(self) -> list[str]:
        return [*self.listener_services(), *INTERNAL_SERVICES.splitlines()]

    def write_config(self) -> None:
        """Create the instance's directories and write main.cf and master.cf."""
        self._check_root_searchable()
        owner = pwd.getpwnam(MAIL_OWNER)

        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        self.config_directory.mkdir(exist_ok=True)
        # Postfix creates the queue's subdirectories at start, and wants the top owned by root.
        self.queue_directory.mkdir(mode=0o755, exist_ok=True)
        self.data_directory.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.data_directory, owner.pw_uid, owner.pw_gid)

        main_cf = "".join(f"{name} = {value}\n" for name, value in self.main_settings().items())
        (self.config_directory / "main.cf").write_text(main_cf)
        (self.config_directory / "master.cf").write_text("\n".join(self.master_entries()) + "\n")

    def _check_root_searchable(self) -> None:
        owner = pwd.getpwnam(MAIL_OWNER)
        groups = {owner.pw_gid, *(group.gr_gid for group in grp.getgrall()
                                  if MAIL_OWNER in group.gr_mem)}
        existing = self.root
        while not existing.exists():
            existing = existing.parent
        for directory in [existing, *existing.parents]:
            if directory == self.root:
                # write_config() sets its mode.
                continue
            if not _searchable_by(directory, owner.pw_uid, groups):
                mode = stat.S_IMODE(directory.stat().st_mode)
                raise PostfixError(
                    f"postfix instance directory {self.root}: {directory} (mode {mode:04o}) is "
                    f"not searchable by the {MAIL_OWNER} user, so the master cannot open its "
                    f"lock file; use a directory made by tempfile.mkdtemp() under /tmp")

    # Commands.

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(arg) for arg in args]
        try:
            completed = subprocess.run(command, capture_output=True, text=True,
                                       timeout=COMMAND_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise PostfixError(f"{' '.join(command)} timed out after "
                               f"{COMMAND_TIMEOUT_SECONDS} s") from None
        if check and completed.returncode != 0:
            output = " ".join((completed.stdout + completed.stderr).split())
            raise PostfixError(f"{' '.join(command)} failed with exit status "
                               f"{completed.returncode}: {output}; last log lines: "
                               f"{' | '.join(self.log_lines()[-5:])}")
        return completed

    def start(self) -> PostfixInstance:
        """Write the configuration, start the master, and wait until each listener greets."""
        self.write_config()
        self._run(POSTFIX_COMMAND, "-c", self.config_directory, "start")

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            for port in self.listen_ports():
                wait_for_smtp_greeting(port, deadline)
        except TimeoutError as error:
            # A caller whose start() raised never calls stop(), so the master is stopped here.
            self.stop()
            raise PostfixError(f"postfix {self.config_directory} did not start: {error}; last "
                               f"log lines: {' | '.join(self.log_lines()[-5:])}") from None
        LOG.info("postfix started: %s, master pid %s, ports %s", self.config_directory,
                 self.master_pid(), self.listen_ports())
        return self

    def stop(self) -> None:
        """Stop the master and make sure none of this instance's processes remain.

        `postfix stop` (postfix-script of Postfix 3.7) waits up to 5 s for the master and then
        kills its process group. Any process of this instance still alive after
        STOP_TIMEOUT_SECONDS is killed by pid. Only processes in the master's session whose
        MAIL_CONFIG is this config_directory count, and zombies are ignored.
        """
        master_pid = self.master_pid()
        if master_pid is None or not self.instance_processes(master_pid):
            return
        self._run(POSTFIX_COMMAND, "-c", self.config_directory, "stop", check=False)

        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self.instance_processes(master_pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL_SECONDS)
        for pid in self.instance_processes(master_pid):
            LOG.warning("postfix %s: killing leftover process %d", self.config_directory, pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        LOG.info("postfix stopped: %s, master pid %d", self.config_directory, master_pid)

    def __enter__(self) -> PostfixInstance:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def is_running(self) -> bool:
        """Tell whether this instance's master runs, with `postfix status`."""
        completed = self._run(POSTFIX_COMMAND, "-c", self.config_directory, "status", check=False)
        return completed.returncode == 0

    def master_pid(self) -> int | None:
        """Return the pid in queue_directory/pid/master.pid, or None when there is none.

        The master leaves the file behind when it stops, so the pid can be stale.
        """
        try:
            return int((self.queue_directory / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def instance_processes(self, master_pid: int) -> list[int]:
        """Return the live (not zombie) pids of this instance, the master's included."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            session = _process_session(pid)
            if session is None or session[0] == "Z" or session[1] != master_pid:
                continue
            if _process_environment(pid).get("MAIL_CONFIG") == str(self.config_directory):
                pids.append(pid)
        return pids

    def postconf(self, name: str) -> str:
        """Return the value of one parameter as this instance's Postfix reads it."""
        return self._run(POSTCONF_COMMAND, "-c", self.config_directory, "-h", name).stdout.strip()

    def check(self) -> list[str]:
        """Run `postfix check` and return its output lines, which are warnings when present."""
        completed = self._run(POSTFIX_COMMAND, "-c", self.config_directory, "check", check=False)
        return (completed.stdout + completed.stderr).splitlines()

    def queue(self) -> list[QueuedMessage]:
        """List the queued messages with `postqueue -j`, or `postqueue -p` where -j fails."""
        completed = self._run(POSTQUEUE_COMMAND, "-c", self.config_directory, "-j", check=False)
        if completed.returncode == 0:
            return parse_queue_json(completed.stdout)

        # postqueue has -j since Postfix 3.1, so this path only serves older versions.
        return parse_queue_listing(self.queue_listing())

    def queue_listing(self) -> str:
        """Return the text of `postqueue -p`."""
        return self._run(POSTQUEUE_COMMAND, "-c", self.config_directory, "-p").stdout

    def flush(self) -> None:
        """Ask Postfix to retry every deferred message now (`postqueue -f`)."""
        self._run(POSTQUEUE_COMMAND, "-c", self.config_directory, "-f")
        LOG.info("postfix %s: queue flushed", self.config_directory)

    def log_lines(self) -> list[str]:
        """Return the lines of this instance's maillog_file so far."""
        try:
            return self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def log_warnings(self) -> list[str]:
        """Return the log lines with a Postfix warning, error, fatal or panic."""
        return [line for line in self.log_lines()
                if re.search(r"\]: (warning|error|fatal|panic): ", line)]

    # Waiting and sending.

    def wait_until(self, predicate: Callable[[], Value], timeout: float = WAIT_TIMEOUT_SECONDS,
                   description: str = "condition") -> Value:
        """Call `predicate` until it returns a true value and return that value.

        Raises TimeoutError naming `description` and the last log line when `timeout` seconds
        pass first.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                last_line = (self.log_lines() or ["(log is empty)"])[-1]
                raise TimeoutError(f"postfix {self.config_directory}: timed out after {timeout} s "
                                   f"waiting for {description}; last log line: {last_line}")
            time.sleep(POLL_INTERVAL_SECONDS)

    def submit(self, sender: str, recipients: Sequence[str], message: bytes | EmailMessage,
               port: int | None = None) -> str:
        """Send one message by SMTP to the instance and return its queue id.

        An EmailMessage is sent with CRLF line endings. Bytes are sent as given, and smtplib
        adds a CRLF only when they do not end with one. The queue id comes from the "queued as"
        text of the DATA reply, and is "" when the reply has none. Raises SMTPSenderRefused,
        SMTPRecipientsRefused or SMTPDataError with the server's reply when it rejects the
        message, and other smtplib exceptions pass through.
        """
        if isinstance(message, EmailMessage):
            data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        else:
            data = message
        with smtplib.SMTP(LOOPBACK, port or self.smtp_port, local_hostname=CLIENT_HOSTNAME,
                          timeout=SMTP_TIMEOUT_SECONDS) as client:
            client.ehlo()
            code, text = client.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, sender)
            for recipient in recipients:
                code, text = client.rcpt(recipient)
                if code not in (250, 251):
                    raise smtplib.SMTPRecipientsRefused({recipient: (code, text)})
            code, text = client.data(data)
            if code != 250:
                raise smtplib.SMTPDataError(code, text)

        match = QUEUED_AS.search(text)
        return match.group(1).decode() if match else ""


class RelayPostfix(PostfixInstance):
    """Postfix that relays all mail to the gate, and mail for `sender_domain` to the sink.

    The gate is `relayhost = [127.0.0.1]:gate_port`, so a rejection at end of DATA becomes a
    bounce or a deferral in this Postfix. A transport_maps entry sends mail for `sender_domain`
    to `[127.0.0.1]:sink_port`, which is where the bounces to a sender in that domain go.
    """

    def __init__(self, directory: Path, *, smtp_port: int, gate_port: int, sink_port: int,
                 sender_domain: str = "sender.test",
                 settings: Mapping[str, str] | None = None) -> None:
        super().__init__(directory, smtp_port=smtp_port, sink_port=sink_port, settings=settings)
        self.gate_port = gate_port
        self.sender_domain = sender_domain

    def shape_settings(self) -> dict[str, str]:
        return {
            "relayhost": f"[{LOOPBACK}]:{self.gate_port}",
            "transport_maps":
                f"inline:{{ {self.sender_domain}=smtp:[{LOOPBACK}]:{self.sink_port} }}",
        }

    def listener_services(self) -> list[str]:
        return [f"{LOOPBACK}:{self.smtp_port} inet n - n - - smtpd"]


class ProxyPostfix(PostfixInstance):
    """Postfix as a before-queue proxy in front of the gate, configured as in SMTPD_PROXY_README.

    The smtpd on `smtp_port` hands each session to the gate at `filter_port` with
    smtpd_proxy_filter and passes the gate's replies to the client. The gate sends what it
    accepts to the after-filter smtpd on `after_filter_port`, which has the README's relaxed
    restrictions and queues everything. All queued mail, bounces included, goes to the sink.
    """

    def __init__(self, directory: Path, *, smtp_port: int, filter_port: int,
                 after_filter_port: int, sink_port: int,
                 settings: Mapping[str, str] | None = None) -> None:
        super().__init__(directory, smtp_port=smtp_port, sink_port=sink_port, settings=settings)
        self.filter_port = filter_port
        self.after_filter_port = after_filter_port

    def shape_settings(self) -> dict[str, str]:
        return {"relayhost": f"[{LOOPBACK}]:{self.sink_port}"}

    def listen_ports(self) -> list[int]:
        return [self.smtp_port, self.after_filter_port]

    def listener_services(self) -> list[str]:
        return [
            f"{LOOPBACK}:{self.smtp_port} inet n - n - 20 smtpd",
            f"  -o smtpd_proxy_filter={LOOPBACK}:{self.filter_port}",
            "  -o smtpd_client_connection_count_limit=10",
            f"{LOOPBACK}:{self.after_filter_port} inet n - n - - smtpd",
            "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8",
            "  -o smtpd_client_restrictions=",
            "  -o smtpd_helo_restrictions=",
            "  -o smtpd_sender_restrictions=",
            "  -o smtpd_relay_restrictions=",
            "  -o smtpd_recipient_restrictions=permit_mynetworks,reject",
            "  -o smtpd_data_restrictions=",
            "  -o mynetworks=127.0.0.0/8",
            "  -o receive_override_options=no_unknown_recipient_checks",
        ]
