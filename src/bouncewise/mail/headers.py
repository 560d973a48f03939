"""Header fields: unfolding, Content-Type parameters, RFC 2047 encoded words, addresses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.errors import MessageError
from email.header import decode_header, make_header
from datetime import timezone
from email.utils import getaddresses, parsedate_to_datetime

from bouncewise.config import Limits

# A field name is printable ASCII except the colon (RFC 5322 section 2.2).
FIELD_NAME = re.compile(rb"[!-9;-~]{1,76}")


# Header fields that list failed recipients. Their values may be as long as
# `max_address_list_size`, because a bounce to a mailing list can name thousands of addresses.
ADDRESS_LIST_FIELDS = frozenset(("x-failed-recipients",))
_ADDRESS_LIST_FIELD = re.compile(
    rb"^(?:" + rb"|".join(re.escape(name.encode()) for name in ADDRESS_LIST_FIELDS) + rb")[ \t]*:",
    re.MULTILINE | re.IGNORECASE)


# One header field with its continuation lines. Each repetition starts at a newline followed by
# white space and "." stops at a newline, so the pattern cannot backtrack.
_FIELD = re.compile(r"^([!-9;-~]{1,76})[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.MULTILINE)
_FOLD = re.compile(r"[ \t]*\n[ \t]+")


def parse_header_block(head: bytes, limits: Limits) -> dict[str, list[str]]:
    """Parse header fields into lower-case names mapping to unfolded values, in order.

    Ordinary header blocks take a fast path with one regular expression. A block with an
    over-long line, an address-list field or more than `max_header_size` bytes takes the
    bounded line-by-line path, `parse_header_block_by_line`.
    """
    if (len(head) > limits.max_header_size or _has_long_line(head, limits.max_line_length)
            or _ADDRESS_LIST_FIELD.search(head)):
        return parse_header_block_by_line(head, limits)

    fields: dict[str, list[str]] = {}
    max_length = limits.max_line_length
    for name, value in _FIELD.findall(head.decode("utf-8", "replace")):
        if "\n" in value:
            value = _FOLD.sub(" ", value)
        fields.setdefault(name.lower(), []).append(value.strip()[:max_length])
    return fields


def _has_long_line(head: bytes, max_length: int) -> bool:
    return max(map(len, head.split(b"\n")), default=0) > max_length


def parse_header_block_by_line(head: bytes, limits: Limits) -> dict[str, list[str]]:
    """Parse header fields into lower-case names mapping to unfolded values, in order.

    Each line is cut to `max_line_length` bytes and each unfolded value to as many characters.
    Parsing stops once `max_header_size` bytes of lines were kept, so a header line megabytes
    long costs one scan and does not hide the fields after it. Fields in `ADDRESS_LIST_FIELDS`
    are cut instead to what remains of `max_address_list_size` over all of them, and their
    bytes do not count against `max_header_size`.
    """
    fields: dict[str, list[str]] = {}
    name = ""
    value: list[bytes] = []
    value_size = 0
    value_cap = limits.max_line_length
    kept_size = 0
    address_list_size = 0

    def store() -> None:
        if name:
            text = b" ".join(value).decode("utf-8", "replace").strip()
            fields.setdefault(name, []).append(text[:value_cap])

    line_cap = max(limits.max_line_length, limits.max_address_list_size)
    for line in _clipped_lines(head, line_cap):
        if kept_size >= limits.max_header_size:
            break
        if line[:1] in (b" ", b"\t"):
            # Continuation lines past the value's cap are dropped and do not count as kept.
            if name and value_size < value_cap:
                if name in ADDRESS_LIST_FIELDS:
                    line = line[: value_cap - value_size]
                    address_list_size += len(line)
                else:
                    line = line[: limits.max_line_length]
                    kept_size += len(line)
                value.append(line.strip())
                value_size += len(line)
            continue

        store()
        name = ""
        colon = line.find(b":")
        if colon <= 0 or not FIELD_NAME.fullmatch(line[:colon].rstrip()):
            kept_size += min(len(line), limits.max_line_length)
            continue
        name = line[:colon].rstrip().decode("ascii").lower()
        if name in ADDRESS_LIST_FIELDS:
            value_cap = max(0, limits.max_address_list_size - address_list_size)
            line = line[: colon + 1 + value_cap]
            address_list_size += len(line)
        else:
            value_cap = limits.max_line_length
            line = line[: limits.max_line_length]
            kept_size += len(line)
        value = [line[colon + 1 :].strip()]
        value_size = len(value[0])
    store()
    return fields


def _clipped_lines(head: bytes, max_length: int) -> Iterator[bytes]:
    """Yield the lines of `head`, each cut to `max_length` bytes."""
    position = 0
    while position < len(head):
        end = head.find(b"\n", position)
        if end < 0:
            end = len(head)
        yield head[position : min(end, position + max_length)]
        position = end + 1


def parse_parameters(text: str) -> dict[str, str]:
    """Parse `; name=value; name="quoted value"` into a dict with lower-case names."""
    parameters: dict[str, str] = {}
    for match in _PARAMETER.finditer(text):
        name = match.group(1).lower()
        value = match.group(2)
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        parameters.setdefault(name.rstrip("*"), value)
    return parameters


_PARAMETER = re.compile(r'([A-Za-z0-9_.*-]{1,64})\s*=\s*("(?:[^"\\]|\\.){0,1000}"|[^;\s]{0,1000})')


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words; return the value unchanged if they are malformed."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, AssertionError, MessageError):
        # MessageError covers HeaderParseError (broken base64) and CharsetError (a charset name
        # that is not ASCII).
        return value


_ANGLE_ADDRESS = re.compile(r"<([^<>\s]{1,320})>")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252}")


def normalize_address(address: str) -> str:
    """Strip brackets, quotes and a trailing dot; lower-case the domain."""
    address = address.strip().strip("<>").strip().strip("'\"").rstrip(".")
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    return f"{local}@{domain.lower()}"


def first_address(value: str) -> str:
    """Return the first mail address in a header value or a line of text, or ""."""
    if not value:
        return ""
    match = _ANGLE_ADDRESS.search(value)
    if match and "@" in match.group(1):
        return normalize_address(match.group(1))
    match = _BARE_ADDRESS.search(value)
    if match:
        return normalize_address(match.group(0))
    return ""


def addresses(value: str) -> list[str]:
    """Return every mail address in a header value such as To or Cc."""
    found = []
    for _, address in getaddresses([value]):
        if "@" in address:
            found.append(normalize_address(address))
    return found


def parse_date_utc(value: str) -> str:
    """Return an RFC 5322 date as ISO 8601 in UTC, or "" where it cannot be read."""
    if not value:
        return ""
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):
        return ""
