"""The records a decoder fills: the facts a bounce states, per recipient, with no judgement added."""

from __future__ import annotations

from dataclasses import dataclass, field

# Kinds of report a recipient row can come from. The judge maps each kind to its reasons.
FAILURE = "failure"
DELAY = "delay"
DELIVERED = "delivered"
FEEDBACK = "feedback"
AUTO_REPLY = "auto-reply"


@dataclass(slots=True)
class RecipientFields:
    """Per-recipient fields, named after RFC 3464 where it has a name for them."""

    final_recipient: str = ""
    original_recipient: str = ""
    action: str = ""
    status: str = ""
    # True where `status` comes from a DSN's Status field rather than from reply text.
    status_from_field: bool = False
    reply_code: str = ""
    diagnostic_code: str = ""
    diagnostic_type: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    smtp_command: str = ""
    last_attempt_date: str = ""
    kind: str = FAILURE
    feedback_type: str = ""


@dataclass(slots=True)
class Report:
    """One decoded message: its recipients and what it carries about the original message."""

    decoded_by: str
    recipients: list[RecipientFields] = field(default_factory=list)
    sender: str = ""
    original_message_id: str = ""
    subject: str = ""
    timestamp: str = ""
    truncated: bool = False
