"""Decoders: read a message into per-recipient fields, with no opinion about the reason."""

from __future__ import annotations

from bouncewise.decode.fields import Report, RecipientFields
from bouncewise.decode.notice import fill_original
from bouncewise.decode.registry import DECODERS
from bouncewise.mail.message import Message

__all__ = ["Report", "RecipientFields", "decode_message"]


def decode_message(message: Message) -> Report | None:
    """Run the decoders in registry order; return the first report, or None for a non-bounce."""
    for decoder in DECODERS:
        report = decoder.decode(message)
        if report is None or not report.recipients:
            continue
        del report.recipients[message.limits.max_recipients :]
        fill_original(report, message)
        report.truncated = message.truncated
        return report
    return None
