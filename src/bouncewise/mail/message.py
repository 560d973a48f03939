"""A lean, bounded reader of RFC 5322 messages and their MIME parts.

The standard `email` package builds a full object tree with header objects for every part, which
costs several times more than reading a bounce needs. This reader splits a message into header
fields and body bytes, and decodes a part's body only when a decoder asks for it. Every step is
bounded by `Limits`: header size, MIME depth, part count and line length.
"""

from __future__ import annotations

import binascii
import codecs
from collections.abc import Iterator

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.mail.headers import FIELD_NAME, decode_words, parse_header_block, parse_parameters


def normalize_newlines(raw: bytes) -> bytes:
    """Return `raw` with CRLF and bare CR line endings turned into LF."""
    if b"\r" not in raw:
        return raw
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def split_head(raw: bytes, limits: Limits) -> tuple[bytes, bytes]:
    """Split a message into its header block and its body at the first empty line.

    A header block with no empty line after it is all head. `parse_header_block` reads at most
    `max_header_size` bytes of the head, so an over-long block costs one linear scan.
    """
    if raw.startswith(b"\n"):
        return b"", raw[1:]

    end = raw.find(b"\n\n")
    if end < 0:
        return raw, b""
    return raw[: end + 1], raw[end + 2 :]


def unreadable_cause(data: bytes) -> str:
    """Return why `data` cannot be a mail message, or "" if it may be one.

    A message starts with a header field or an mbox "From " line, after any blank lines. Binary
    data and plain text fail that test on their first line, so they are never parsed further.
    """
    if not data:
        return "empty input"
    stripped = data.lstrip(b" \t\r\n")
    if not stripped:
        return "no message: only blank bytes"
    if stripped.startswith(b"From "):
        return ""

    line_end = stripped.find(b"\n", 0, _FIRST_LINE_SCAN)
    first_line = stripped[:line_end] if line_end >= 0 else stripped[:_FIRST_LINE_SCAN]
    name, colon, _ = first_line.partition(b":")
    if colon and FIELD_NAME.fullmatch(name.rstrip()):
        return ""
    return "not a mail message: the first line is not a header field"


# Bytes of the first line read when deciding whether an input is a mail message at all.
_FIRST_LINE_SCAN = 4096


class _PartCounter:
    """Count of MIME parts created for one message, shared by all its parts."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Part:
    """One MIME entity: header fields, raw body bytes, and lazily split children."""

    __slots__ = ("fields", "body", "depth", "limits", "_counter", "_children", "_content_type",
                 "_text")

    def __init__(
        self,
        raw: bytes,
        limits: Limits = DEFAULT_LIMITS,
        depth: int = 0,
        counter: _PartCounter | None = None,
        default_type: str = "text/plain",
    ) -> None:
        head, self.body = split_head(raw, limits)
        self.fields = parse_header_block(head, limits)
        self.depth = depth
        self.limits = limits
        self._counter = counter if counter is not None else _PartCounter()
        self._counter.count += 1
        self._children: list[Part] | None = None
        self._text: str | None = None
        self._content_type = self._parse_content_type(default_type)

    def _parse_content_type(self, default_type: str) -> tuple[str, dict[str, str]]:
        value = self.header("content-type")
        if not value:
            return default_type, {}
        main, _, rest = value.partition(";")
        content_type = main.strip().lower()
        if "/" not in content_type:
            content_type = default_type
        return content_type, parse_parameters(rest)

    def header(self, name: str, default: str = "") -> str:
        """Return the first value of header field `name` (lower case), unfolded."""
        values = self.fields.get(name)
        return values[0] if values else default

    def headers(self, name: str) -> list[str]:
        """Return every value of header field `name` (lower case)."""
        return self.fields.get(name, [])

    def decoded_header(self, name: str) -> str:
        """Return header field `name` with RFC 2047 encoded words decoded."""
        return decode_words(self.header(name))

    @property
    def content_type(self) -> str:
        return self._content_type[0]

    def param(self, name: str, default: str = "") -> str:
        """Return a Content-Type parameter, such as `boundary` or `charset`."""
        return self._content_type[1].get(name, default)

    def payload(self) -> bytes:
        """Return the body with its Content-Transfer-Encoding undone."""
        encoding = self.header("content-transfer-encoding").strip().lower()
        if encoding == "base64":
            return decode_base64(self.body)
        if encoding == "quoted-printable":
            return binascii.a2b_qp(self.body)
        return self.body

    def text(self) -> str:
        """Return the body decoded to text, with over-long lines cut to the line limit.

        Several decoders read the same part in turn, so the decoded text is kept.
        """
        if self._text is None:
            self._text = self._decode_text()
        return self._text

    def _decode_text(self) -> str:
        data = self.payload()[: self.limits.max_scan_text * 4]
        text = decode_bytes(data, self.param("charset"))[: self.limits.max_scan_text]
        return clip_lines(text, self.limits.max_line_length)

    def children(self) -> list[Part]:
        """Return the parts inside a multipart or message part, within the depth and count limits."""
        if self._children is None:
            self._children = self._split_children()
        return self._children

    def _split_children(self) -> list[Part]:
        if self.depth >= self.limits.max_mime_depth:
            return []

        content_type = self.content_type
        if content_type.startswith("multipart/"):
            boundary = self.param("boundary")
            if not boundary:
                return []
            default = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
            return [self._child(chunk, default) for chunk in self._split_multipart(boundary)]

        if content_type in ("message/rfc822", "message/global", "text/rfc822-headers",
                            "message/rfc822-headers", "message/global-headers"):
            return [self._child(self.payload(), "text/plain")]
        return []

    def _child(self, raw: bytes, default_type: str) -> Part:
        return Part(raw, self.limits, self.depth + 1, self._counter, default_type)

    def _split_multipart(self, boundary: str) -> Iterator[bytes]:
        delimiter = b"--" + boundary.encode("ascii", "replace")
        body = b"\n" + self.body
        marker = b"\n" + delimiter
        position = _find_delimiter(body, marker, 0)
        while position >= 0:
            if self._counter.count >= self.limits.max_mime_parts:
                return
            if body[position + len(marker) : position + len(marker) + 2] == b"--":
                return
            line_end = body.find(b"\n", position + 1)
            if line_end < 0:
                return
            following = _find_delimiter(body, marker, line_end)
            end = following if following >= 0 else len(body)
            yield body[line_end + 1 : end]
            position = following

    def walk(self) -> Iterator[Part]:
        """Yield this part and every part below it, depth first, within the limits."""
        stack = [self]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.children()))


def _find_delimiter(body: bytes, marker: bytes, start: int) -> int:
    """Return the position of the next boundary line at or after `start`, or -1.

    A line that starts with the marker but goes on with other characters is a longer
    boundary (an outer part's, say) and is skipped.
    """
    position = body.find(marker, start)
    while position >= 0:
        after = body[position + len(marker) : position + len(marker) + 2]
        if after == b"--" or after[:1] in (b"\n", b" ", b"\t", b""):
            return position
        position = body.find(marker, position + len(marker))
    return -1


def decode_base64(data: bytes) -> bytes:
    """Decode base64 leniently: skip junk characters and a broken tail instead of failing."""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        cleaned = data.translate(None, _NOT_BASE64)
        # One character past a multiple of four encodes no whole byte; two or three need padding.
        remainder = len(cleaned) % 4
        cleaned = cleaned[:-1] if remainder == 1 else cleaned + b"=" * ((4 - remainder) % 4)
        try:
            return binascii.a2b_base64(cleaned)
        except binascii.Error:
            return b""


# Every byte outside the base64 alphabet, padding included; the decoder pads again after the cut.
_NOT_BASE64 = bytes(byte for byte in range(256)
                    if byte not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def decode_bytes(data: bytes, charset: str = "") -> str:
    """Decode bytes in the named charset, falling back to UTF-8 and then Latin-1 for unknown ones."""
    charset = _known_charset(charset.strip().strip('"').lower())

    if charset in ("us-ascii", "ascii", "utf-8", "utf8"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    try:
        return data.decode(charset, "replace")
    except (UnicodeError, LookupError, ValueError):
        return data.decode("utf-8", "replace")


def _known_charset(name: str) -> str:
    """Return `name` if it names a text encoding Python has, else "utf-8"."""
    if not name or len(name) > 64:
        return "utf-8"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return "utf-8"
    # Codecs such as zlib, base64 and rot13 are registered but turn bytes into bytes.
    return name if getattr(info, "_is_text_encoding", True) else "utf-8"


def clip_lines(text: str, max_line_length: int) -> str:
    """Cut every line of `text` to `max_line_length` characters."""
    if len(text) <= max_line_length or all(len(line) <= max_line_length for line in text.split("\n")):
        return text
    return "\n".join(line[:max_line_length] for line in text.split("\n"))


class Message(Part):
    """A whole message: the top-level part, read from bytes with newlines normalized."""

    __slots__ = ("truncated", "cache")

    def __init__(self, raw: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
        self.truncated = len(raw) > limits.max_message_size
        raw = normalize_newlines(raw[: limits.max_message_size])
        # An mbox "From " separator line is not a header field.
        if raw.startswith(b"From "):
            raw = raw[raw.find(b"\n") + 1 :] if b"\n" in raw else b""
        super().__init__(raw, limits)
        # Values that several decoders derive from the same message, such as its notice text.
        self.cache: dict[str, object] = {}
