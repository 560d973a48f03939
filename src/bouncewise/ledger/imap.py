"""Reading bounces from an IMAP mailbox into the ledger.

Each pass selects the mailbox, searches it in windows of UIDs for messages that carry neither the
done keyword nor \\Deleted, fetches them with BODY.PEEK[] (which leaves \\Seen alone) and hands
them to the intake. Only after a batch's database transaction has been committed are its
messages marked: the done keyword is set, or with `move_to` they are moved to that mailbox. A
database failure therefore leaves every unrecorded message unmarked, to be read on the next run,
and a message recorded but not yet marked is read again and skipped as a duplicate by the store.
Messages are never deleted, except that a move on a server without MOVE copies, flags the copied
originals \\Deleted and removes those with UID EXPUNGE (only those UIDs, and only with UIDPLUS).

A message larger than `max_message_size` is read up to that size and classified from its start,
as the file and Maildir readers do. A bounce puts its failure report before the returned message,
so a bounce that returns a large original is still classified.
"""

from __future__ import annotations

import base64
import imaplib
import ipaddress
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote

from bouncewise.ledger.config import ImapSettings
from bouncewise.ledger.intake import Intake
from bouncewise.mail.sources import Item

__all__ = ["ImapError", "ingest_imap"]

LOGGER = logging.getLogger("bouncewise.ledger")

# UIDs covered by one UID SEARCH. imaplib rejects a response line over 1,000,000 bytes, and a
# window of 20,000 UIDs returns at most 20,000 numbers of up to 10 digits and a space each.
SEARCH_WINDOW = 20_000

# UIDs whose sizes one UID FETCH (RFC822.SIZE) requests.
SIZE_CHUNK = 200

# Bytes of message data that one UID FETCH requests. A single larger message is fetched alone.
FETCH_BYTES = 16 * 1024 * 1024

# UIDs named in one UID STORE, MOVE, COPY or EXPUNGE command.
MARK_CHUNK = 500

# Characters that RFC 3501 does not allow in an atom, and so not in a keyword.
_ATOM_SPECIALS = set('(){ %*"\\]')

_UID_PATTERN = re.compile(rb"\bUID (\d+)")
_SIZE_PATTERN = re.compile(rb"\bRFC822\.SIZE (\d+)")


class ImapError(Exception):
    """An IMAP server that cannot be reached or used. The message names the server and the cause."""


class _ConnectionFailed(ImapError):
    """The server is unreachable or the connection broke, so follow mode retries on the next pass."""


def ingest_imap(intake: Intake, settings: ImapSettings, follow: bool = False,
                interval: float = 10.0, stop: threading.Event | None = None) -> None:
    """Record the mailbox's unmarked messages through `intake` and mark each recorded one.

    With `follow`, read the mailbox again every `interval` seconds until `stop` is set. After the
    first pass, an unreachable server or a broken connection is logged and tried again on the
    next pass. Every other error raises ImapError: any error of the first pass, a failed
    login, a mailbox that cannot be used. LedgerUnavailable from the intake propagates, and the
    messages of the failed batch stay unmarked.
    """
    stop = stop or threading.Event()
    mailbox = _Mailbox(settings, _password(settings))

    try:
        mailbox.connect()
        mailbox.ingest_pass(intake, stop)

        failures = 0
        while follow and not stop.wait(interval):
            try:
                if not mailbox.connected:
                    mailbox.connect()
                mailbox.ingest_pass(intake, stop)
                failures = 0
            except _ConnectionFailed as error:
                failures += 1
                LOGGER.warning("imap: %s; connecting again in %g s (failure %d in a row)",
                               error, interval, failures)
                mailbox.close()
    finally:
        mailbox.close()


def _password(settings: ImapSettings) -> str:
    """Return the password from the settings, or the first line of `password_file`."""
    if settings.password and settings.password_file:
        raise ImapError("[imap] sets both password and password_file: keep one of them")
    if settings.password:
        return settings.password
    if not settings.password_file:
        raise ImapError("[imap] has no password: set password or password_file")

    try:
        with open(settings.password_file, encoding="utf-8") as stream:
            line = stream.readline().rstrip("\r\n")
    except OSError as error:
        raise ImapError(f"[imap] password_file {settings.password_file}: cannot read: "
                        f"{error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ImapError(f"[imap] password_file {settings.password_file}: not UTF-8 text") from error
    if not line:
        raise ImapError(f"[imap] password_file {settings.password_file}: the first line is empty")
    return line


class _Mailbox:
    """One connection to the IMAP server, and the state of the selected mailbox between passes."""

    def __init__(self, settings: ImapSettings, password: str) -> None:
        _check_settings(settings)
        self.settings = settings
        self.password = password
        self.port = settings.port or (993 if settings.security == "tls" else 143)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        self.server = f"IMAP server {host}:{self.port}"
        if settings.security == "none" and not _is_loopback(settings.host):
            LOGGER.warning("imap: %s: security = \"none\" sends the password and the bounces "
                           "unencrypted over the network; use \"tls\" or \"starttls\"",
                           self.server)
        self.imap: imaplib.IMAP4 | None = None
        self.capabilities: set[str] = set()
        self.uidvalidity = 0
        self.uidnext = 0
        # UIDs below the cursor were all marked in an earlier pass of this connection.
        self.cursor = 1
        self.lowest_skipped = 0
        # UID of each message handed to the intake and not yet marked, by source name.
        self.pending: dict[str, int] = {}
        self.max_message_size = 0
        self.warned_no_expunge = False

    @property
    def connected(self) -> bool:
        return self.imap is not None

    # Connecting.

    def connect(self) -> None:
        """Open the connection, log in and check that the mailboxes can be used."""
        self.close()
        imap = self._open()
        self.imap = imap
        try:
            self._login(imap)
            self.capabilities = self._capabilities(imap)
            if self.settings.move_to:
                self._ensure_mailbox(self.settings.move_to)
        except (OSError, imaplib.IMAP4.abort) as error:
            self.close()
            raise _ConnectionFailed(f"{self.server}: connection lost: {_cause(error)}") from error
        except imaplib.IMAP4.error as error:
            self.close()
            raise ImapError(f"{self.server}: {_cause(error)}") from error
        except ImapError:
            self.close()
            raise
        self.cursor = 1

    def _open(self) -> imaplib.IMAP4:
        settings = self.settings
        try:
            if settings.security == "tls":
                return imaplib.IMAP4_SSL(settings.host, self.port, timeout=settings.timeout,
                                         ssl_context=ssl.create_default_context())
            imap = imaplib.IMAP4(settings.host, self.port, timeout=settings.timeout)
        except ssl.SSLCertVerificationError as error:
            raise ImapError(f"{self.server}: TLS handshake failed: {_tls_cause(error)}") from error
        except ssl.SSLError as error:
            raise _ConnectionFailed(f"{self.server}: TLS handshake failed: "
                                    f"{_tls_cause(error)}") from error
        except socket.gaierror as error:
            raise _ConnectionFailed(f"{self.server}: cannot resolve the host name: "
                                    f"{error.strerror or error}") from error
        except TimeoutError as error:
            raise _ConnectionFailed(f"{self.server}: timed out after {settings.timeout:g} s "
                                    f"while connecting") from error
        except (OSError, imaplib.IMAP4.error) as error:
            raise _ConnectionFailed(f"{self.server}: cannot connect: {_cause(error)}") from error

        if settings.security == "starttls":
            try:
                imap.starttls(ssl_context=ssl.create_default_context())
            except ssl.SSLError as error:
                _shutdown(imap)
                raise ImapError(f"{self.server}: TLS handshake after STARTTLS failed: "
                                f"{_tls_cause(error)}") from error
            except (OSError, imaplib.IMAP4.error) as error:
                _shutdown(imap)
                raise ImapError(f"{self.server}: STARTTLS failed: {_cause(error)}") from error
        return imap

    def _login(self, imap: imaplib.IMAP4) -> None:
        settings = self.settings
        if "LOGINDISABLED" in imap.capabilities:
            raise ImapError(f"{self.server}: the server does not accept a password on this "
                            f"connection: set security = \"tls\" or \"starttls\"")
        if not (settings.user.isascii() and self.password.isascii()):
            raise ImapError(f"{self.server}: IMAP LOGIN takes only ASCII user names and "
                            f"passwords; {settings.user!r} or its password is not ASCII")
        try:
            # imaplib quotes the password but sends the user name as it is.
            imap.login(_quoted(settings.user), self.password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as error:
            raise ImapError(f"{self.server}: login as {settings.user} failed: "
                            f"{_cause(error)}") from error

    def _capabilities(self, imap: imaplib.IMAP4) -> set[str]:
        # Servers list more capabilities after login than in their greeting, and imaplib keeps
        # only the list it read before login.
        status, data = imap.capability()
        if status != "OK" or not data or not data[-1]:
            raise ImapError(f"{self.server}: CAPABILITY failed: {_response_text(data)}")
        return set(_decode(data[-1]).upper().split())

    def _ensure_mailbox(self, name: str) -> None:
        """Create the mailbox `name` unless it exists."""
        imap = self._imap()
        status, data = imap.list('""', _mailbox_argument(name))
        if status == "OK" and any(data):
            return
        status, data = imap.create(_mailbox_argument(name))
        if status != "OK":
            raise ImapError(f"{self.server}: cannot create mailbox {name!r} for move_to: "
                            f"{_response_text(data)}")
        LOGGER.info("imap: %s: created mailbox %r for move_to", self.server, name)

    def close(self) -> None:
        """Log out and close the connection, ignoring errors of a connection already broken."""
        if self.imap is None:
            return
        imap, self.imap = self.imap, None
        try:
            imap.logout()
        except (OSError, imaplib.IMAP4.error):
            _shutdown(imap)

    def _imap(self) -> imaplib.IMAP4:
        if self.imap is None:
            raise _ConnectionFailed(f"{self.server}: not connected")
        return self.imap

    def _uid(self, command: str, *arguments: str) -> tuple[str, list]:
        return self._call(self._imap().uid, command, *arguments)

    def _call(self, function: Callable[..., tuple[str, list]],
              *arguments: str) -> tuple[str, list]:
        """Run one imaplib command and turn its exceptions into ImapError naming the server.

        The intake calls back into this class while it records, so the errors are converted
        here, where they cannot be mistaken for errors of the database.
        """
        try:
            return function(*arguments)
        except imaplib.IMAP4.readonly as error:
            raise ImapError(f"{self.server}: mailbox {self.settings.mailbox!r} is read-only, so "
                            f"recorded messages cannot be marked: {_cause(error)}") from error
        except (OSError, imaplib.IMAP4.abort) as error:
            raise _ConnectionFailed(f"{self.server}: connection lost: {_cause(error)}") from error
        except imaplib.IMAP4.error as error:
            raise ImapError(f"{self.server}: mailbox {self.settings.mailbox!r}: "
                            f"{_cause(error)}") from error

    # One pass over the mailbox.

    def ingest_pass(self, intake: Intake, stop: threading.Event) -> None:
        """Record the unmarked messages below the mailbox's UIDNEXT and mark them."""
        self._select()
        self.max_message_size = intake.limits.max_message_size
        self.lowest_skipped = 0
        self.pending = {}
        counter = _Counter()
        intake.ingest_items(counter.count(self._pending_items(stop)), committed=self._mark)

        if not stop.is_set():
            self.cursor = self.lowest_skipped or self.uidnext
        if counter.items:
            action = (f"moved them to {self.settings.move_to!r}" if self.settings.move_to
                      else f"set {self.settings.done_keyword} on them")
            LOGGER.info("imap: %s: mailbox %r: read %d messages and %s", self.server,
                        self.settings.mailbox, counter.items, action)

    def _select(self) -> None:
        imap = self._imap()
        mailbox = self.settings.mailbox
        status, data = self._call(imap.select, _mailbox_argument(mailbox))
        if status != "OK":
            raise ImapError(f"{self.server}: cannot select mailbox {mailbox!r}: "
                            f"{_response_text(data)}")

        uidvalidity = _number(imap.untagged_responses.get("UIDVALIDITY", []))
        if uidvalidity != self.uidvalidity:
            # A new UIDVALIDITY renumbers every message, so the cursor means nothing any more.
            self.cursor = 1
            self.uidvalidity = uidvalidity
        self.uidnext = _number(imap.untagged_responses.get("UIDNEXT", [])) or self._last_uid() + 1
        self._check_keywords(imap.untagged_responses.get("PERMANENTFLAGS", []))

    def _last_uid(self) -> int:
        """Return the highest UID in the mailbox, for servers that send no UIDNEXT."""
        imap = self._imap()
        if not _number(imap.untagged_responses.get("EXISTS", [])):
            return 0
        status, data = self._call(imap.fetch, "*", "(UID)")
        uids = [int(match.group(1)) for part in data if isinstance(part, bytes)
                for match in [_UID_PATTERN.search(part)] if match]
        if status != "OK" or not uids:
            raise ImapError(f"{self.server}: cannot find the mailbox's last UID: "
                            f"{_response_text(data)}")
        return max(uids)

    def _check_keywords(self, permanent: list) -> None:
        """Raise ImapError if the done keyword cannot be stored and no move_to is set."""
        if self.settings.move_to or not permanent:
            # RFC 3501: without PERMANENTFLAGS every flag can be stored permanently.
            return
        flags = {flag.lower() for flag in _decode(permanent[-1]).strip("()").split()}
        if "\\*" in flags or self.settings.done_keyword.lower() in flags:
            return
        raise ImapError(f"{self.server}: mailbox {self.settings.mailbox!r} does not allow "
                        f"keywords (PERMANENTFLAGS {_decode(permanent[-1])}), so "
                        f"{self.settings.done_keyword} cannot be set: set move_to to move "
                        f"recorded messages to another mailbox instead")

    def _pending_items(self, stop: threading.Event) -> Iterator[Item]:
        """Yield the messages without the done keyword and \\Deleted, by ascending UID."""
        for low in range(self.cursor, self.uidnext, SEARCH_WINDOW):
            high = min(low + SEARCH_WINDOW, self.uidnext) - 1
            uids = self._search(low, high)
            for start in range(0, len(uids), SIZE_CHUNK):
                if stop.is_set():
                    return
                chunk = uids[start : start + SIZE_CHUNK]
                sizes = self._sizes(chunk)
                for group in _groups_by_size(chunk, sizes, FETCH_BYTES):
                    yield from self._fetch(group, sizes)

    def _search(self, low: int, high: int) -> list[int]:
        status, data = self._uid("SEARCH", f"UID {low}:{high} UNDELETED UNKEYWORD "
                                           f"{self.settings.done_keyword}")
        if status != "OK":
            raise ImapError(f"{self.server}: UID SEARCH failed: {_response_text(data)}")
        return sorted(int(word) for part in data if part for word in part.split())

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        """Return the RFC822.SIZE of each UID. A message expunged since the SEARCH is left out."""
        status, data = self._uid("FETCH", _uid_set(uids), "(UID RFC822.SIZE)")
        if status != "OK":
            raise ImapError(f"{self.server}: UID FETCH RFC822.SIZE failed: "
                            f"{_response_text(data)}")
        sizes = {}
        for part in data:
            line = part[0] if isinstance(part, tuple) else part
            if not isinstance(line, bytes):
                continue
            uid, size = _UID_PATTERN.search(line), _SIZE_PATTERN.search(line)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def _fetch(self, uids: list[int], sizes: dict[int, int]) -> Iterator[Item]:
        limit = self.max_message_size
        # Asking for one byte over the limit lets the classifier see that the message was cut.
        status, data = self._uid("FETCH", _uid_set(uids), f"(UID BODY.PEEK[]<0.{limit + 1}>)")
        if status != "OK":
            raise ImapError(f"{self.server}: UID FETCH failed: {_response_text(data)}")

        bodies = _bodies(data)
        for uid in uids:
            source = self._source(uid)
            body = bodies.get(uid)
            if body is None and sizes[uid] == 0:
                # An empty message comes back as "" rather than a literal.
                body = b""
            if body is None:
                # Most likely expunged by another client since the SEARCH.
                LOGGER.warning("imap: %s: no message data returned; it is read again on the "
                               "next run if it is still there", source)
                self.lowest_skipped = min(self.lowest_skipped or uid, uid)
                continue
            if sizes[uid] > limit:
                LOGGER.info("imap: %s: %d bytes, over max_message_size; classifying the first "
                            "%d bytes", source, sizes[uid], limit)
            self.pending[source] = uid
            yield Item(source, body)

    def _source(self, uid: int) -> str:
        """Return the message's IMAP URL (RFC 5092), the name it is recorded under."""
        settings = self.settings
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        port = "" if self.port == (993 if settings.security == "tls" else 143) else f":{self.port}"
        return (f"imap://{quote(settings.user, safe='')}@{host}{port}/"
                f"{quote(settings.mailbox, safe='/')};UIDVALIDITY={self.uidvalidity}/;UID={uid}")

    # Marking recorded messages.

    def _mark(self, batch: list[Item]) -> None:
        """Set the done keyword on the committed batch's messages, or move them."""
        uids = sorted(self.pending.pop(item.source) for item in batch)
        for start in range(0, len(uids), MARK_CHUNK):
            chunk = _uid_set(uids[start : start + MARK_CHUNK])
            if self.settings.move_to:
                self._move(chunk)
            else:
                self._command("STORE", chunk, "+FLAGS.SILENT", f"({self.settings.done_keyword})")
        # Untagged EXPUNGE and FETCH responses would pile up in imaplib until the next SELECT.
        for name in ("EXPUNGE", "FETCH", "EXISTS", "RECENT"):
            self._imap().untagged_responses.pop(name, None)

    def _move(self, uid_set: str) -> None:
        target = _mailbox_argument(self.settings.move_to)
        if "MOVE" in self.capabilities:
            self._command("MOVE", uid_set, target)
            return

        self._command("COPY", uid_set, target)
        self._command("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in self.capabilities:
            # UID EXPUNGE removes only these UIDs. A plain EXPUNGE would also remove messages
            # that another client has flagged \Deleted.
            self._command("EXPUNGE", uid_set)
        elif not self.warned_no_expunge:
            self.warned_no_expunge = True
            LOGGER.warning("imap: %s: no MOVE and no UIDPLUS: recorded messages are copied to %r "
                           "and flagged \\Deleted in %r, but stay there until a mail client "
                           "expunges them", self.server, self.settings.move_to,
                           self.settings.mailbox)

    def _command(self, command: str, *arguments: str) -> None:
        status, data = self._uid(command, *arguments)
        if status != "OK":
            raise ImapError(f"{self.server}: UID {command} {arguments[0]} failed: "
                            f"{_response_text(data)}; these messages are recorded and are "
                            f"read again, as duplicates, on the next run")


class _Counter:
    """Number of the items that have passed through `count`."""

    def __init__(self) -> None:
        self.items = 0

    def count(self, items: Iterator[Item]) -> Iterator[Item]:
        for item in items:
            self.items += 1
            yield item


def _check_settings(settings: ImapSettings) -> None:
    if not settings.host:
        raise ImapError("[imap] host is not set")
    if not settings.user:
        raise ImapError("[imap] user is not set")
    if settings.timeout <= 0:
        raise ImapError(f"[imap] timeout must be a positive number of seconds, not "
                        f"{settings.timeout!r}")
    keyword = settings.done_keyword
    if (not keyword or keyword.startswith("\\") or not keyword.isascii()
            or any(char in _ATOM_SPECIALS or not char.isprintable() for char in keyword)):
        raise ImapError(f"[imap] done_keyword {keyword!r} is not a valid IMAP keyword: use "
                        f"letters, digits and $, without spaces or ( ) {{ % * \" \\ ]")
    if settings.move_to and settings.move_to == settings.mailbox:
        raise ImapError(f"[imap] move_to is the mailbox that is read ({settings.mailbox!r})")


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _groups_by_size(uids: list[int], sizes: dict[int, int], max_bytes: int) -> Iterator[list[int]]:
    """Split `uids` into groups of at most `max_bytes`. A larger message forms its own group.

    UIDs without a size (expunged meanwhile) are left out.
    """
    group: list[int] = []
    total = 0
    for uid in uids:
        if uid not in sizes:
            continue
        if group and total + sizes[uid] > max_bytes:
            yield group
            group, total = [], 0
        group.append(uid)
        total += sizes[uid]
    if group:
        yield group


def _bodies(data: list) -> dict[int, bytes]:
    """Return the message data of a UID FETCH BODY[] response by UID.

    imaplib returns each literal as a (line before it, literal) tuple followed by the rest of
    the line. The UID can stand on either side of the literal.
    """
    bodies = {}
    for index, part in enumerate(data):
        if not isinstance(part, tuple):
            continue
        head, literal = part
        match = _UID_PATTERN.search(head)
        if match is None and index + 1 < len(data) and isinstance(data[index + 1], bytes):
            match = _UID_PATTERN.search(data[index + 1])
        if match is not None:
            bodies[int(match.group(1))] = literal
    return bodies


def _uid_set(uids: list[int]) -> str:
    """Return the IMAP sequence set of ascending `uids`, with runs as ranges ("1:4,7")."""
    ranges = []
    start = previous = uids[0]
    for uid in uids[1:]:
        if uid != previous + 1:
            ranges.append(f"{start}:{previous}" if previous != start else str(start))
            start = uid
        previous = uid
    ranges.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(ranges)


def _mailbox_argument(name: str) -> str:
    """Return `name` as an IMAP quoted string in modified UTF-7 (RFC 3501, section 5.1.3)."""
    return _quoted(_modified_utf7(name))


def _modified_utf7(name: str) -> str:
    encoded = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            encoded.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=")
                           .replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            encoded.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(encoded)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(values: list) -> int:
    """Return the last of imaplib's untagged values as an int, or 0."""
    try:
        return int(values[-1])
    except (IndexError, TypeError, ValueError):
        return 0


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _response_text(data: list) -> str:
    parts = [_decode(part) for part in data if isinstance(part, (bytes, str))]
    return " ".join(" ".join(parts).split())[:300] or "no reason given"


def _cause(error: BaseException) -> str:
    """Return one line naming the cause of an imaplib or socket error."""
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = _decode(error.args[0]) if error.args else ""
    return " ".join(text.split())[:300] or type(error).__name__


def _tls_cause(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    return error.reason or str(error)


def _shutdown(imap: imaplib.IMAP4) -> None:
    try:
        imap.shutdown()
    except OSError:
        pass
