"""The fields of a `message/delivery-status` entity (RFC 3464 section 2), split into groups.

The entity is one group of per-message fields, then one group per recipient, separated by blank
lines. MTAs bend this in several ways, all read here:

- groups run together with no blank line between them (AOL, Messaging Server), so a group also
  ends where a per-recipient field repeats or where the first per-recipient field follows the
  per-message fields;
- fields come in any order, Action before Final-Recipient (Amazon SES inbound);
- the fields sit in a plain-text body instead of their own MIME part: a report whose boundary
  does not match its header, a DSN sent without MIME headers, or a bounce forwarded with each
  line quoted by "> ". `find_embedded` finds them there.
"""

from __future__ import annotations

from dataclasses import dataclass

from bouncewise.config import DEFAULT_LIMITS, Limits

# Per-message fields (RFC 3464 section 2.2), and the X- fields that MTAs add beside them.
PER_MESSAGE_FIELDS = frozenset(("reporting-mta", "dsn-gateway", "received-from-mta",
                                "arrival-date", "original-envelope-id"))

# Per-recipient fields (RFC 3464 section 2.3) and the common X- additions.
PER_RECIPIENT_FIELDS = frozenset(("original-recipient", "final-recipient", "action", "status",
                                  "remote-mta", "diagnostic-code", "last-attempt-date",
                                  "final-log-id", "will-retry-until", "x-actual-recipient"))

DSN_FIELDS = PER_MESSAGE_FIELDS | PER_RECIPIENT_FIELDS


def field_groups(text: str, limits: Limits = DEFAULT_LIMITS) -> list[dict[str, str]]:
    """Split the entity into groups of lower-case field names mapping to unfolded values."""
    # Values are collected as lists of lines and joined once, so that many continuation lines
    # cost linear time.
    groups: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    name = ""

    for line in text.split("\n"):
        if not line.strip():
            if current:
                groups.append(current)
            current, name = {}, ""
            continue
        if line[:1] in (" ", "\t"):
            if name:
                current[name].append(line.strip())
            continue

        field_name, colon, value = line.partition(":")
        name = field_name.strip().lower()
        if not colon or not name or len(name) > limits.max_field_name_length or " " in name:
            name = ""
            continue
        if _starts_group(current, name):
            groups.append(current)
            current = {}
        current[name] = [value.strip()]
    if current:
        groups.append(current)
    return [{key: " ".join(lines).strip() for key, lines in group.items()} for group in groups]


def _starts_group(current: dict, name: str) -> bool:
    if not current:
        return False
    if name in current and name in DSN_FIELDS:
        return True
    # The first per-recipient field after the per-message fields, with no blank line between.
    return name in PER_RECIPIENT_FIELDS and not any(key in PER_RECIPIENT_FIELDS for key in current)


def is_recipient_group(group: dict[str, str]) -> bool:
    """Return True if `group` describes one recipient."""
    return "final-recipient" in group or "original-recipient" in group


def typed_value(value: str, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str]:
    """Split `type; value` as in `rfc822; user@example.org`; return (lower-case type, value)."""
    kind, semicolon, rest = value.partition(";")
    kind = kind.strip()
    if semicolon and kind and " " not in kind and len(kind) <= limits.max_value_type_length:
        return kind.lower(), rest.strip()
    return "", value.strip()


def host_name(value: str) -> str:
    """Return the host of a Remote-MTA or Reporting-MTA value, without the type or comments."""
    host = typed_value(value)[1].split(" ")[0].strip()
    return host.rstrip(".")


@dataclass(slots=True)
class EmbeddedReport:
    """DSN fields found inside a text body, with the text around them."""

    notice: str
    fields: str
    after: str


def find_embedded(text: str, limits: Limits = DEFAULT_LIMITS) -> EmbeddedReport | None:
    """Find DSN fields written into a text body, or return None if it has no Final-Recipient."""
    max_name = limits.max_field_name_length
    lines = _unquoted(text.split("\n")[: limits.max_embedded_report_lines], max_name)
    first = next((index for index, line in enumerate(lines)
                  if _field_name(line, max_name) == "final-recipient"), -1)
    if first < 0:
        return None

    start = first
    while start > 0 and (not lines[start - 1].strip()
                         or _field_name(lines[start - 1], max_name) in DSN_FIELDS
                         or lines[start - 1][:1] in (" ", "\t")):
        start -= 1
    while start < first and not lines[start].strip():
        start += 1

    end = first
    while end < len(lines) and _in_fields(lines[end], max_name):
        end += 1
    return EmbeddedReport(notice="\n".join(lines[:start]), fields="\n".join(lines[start:end]),
                          after="\n".join(lines[end:]))


def _in_fields(line: str, max_name: int) -> bool:
    if not line.strip() or line[:1] in (" ", "\t"):
        return True
    name = _field_name(line, max_name)
    return name in DSN_FIELDS or name.startswith("x-")


def _field_name(line: str, max_name: int) -> str:
    name, colon, _ = line.partition(":")
    name = name.strip().lower()
    if not colon or not name or len(name) > max_name or " " in name or line[:1].isspace():
        return ""
    return name


def _unquoted(lines: list[str], max_name: int) -> list[str]:
    """Remove one level of "> " quoting when the Final-Recipient line itself is quoted."""
    quoted = any(line.startswith(">") and _field_name(line[1:].lstrip(), max_name) == "final-recipient"
                 for line in lines)
    if not quoted:
        return lines
    result = []
    for line in lines:
        if line.startswith("> "):
            result.append(line[2:])
        elif line.startswith(">"):
            result.append(line[1:])
        else:
            result.append(line)
    return result
