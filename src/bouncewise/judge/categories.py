"""Coarse categories for action, and which reasons mean the address itself is bad."""

# Reason -> category. A spam refusal is never a bad address: the mailbox exists and the
# recipient never saw the message.
CATEGORIES: dict[str, str] = {
    "userunknown": "bad-address",
    "hostunknown": "bad-address",
    "hasmoved": "bad-address",
    "notaccept": "bad-address",
    "mailboxfull": "mailbox-unavailable",
    "suspend": "mailbox-unavailable",
    "exceedlimit": "mailbox-unavailable",
    "spamdetected": "spam-block",
    "blocked": "spam-block",
    "badreputation": "spam-block",
    "virusdetected": "virus",
    "authfailure": "sender-config",
    "requireptr": "sender-config",
    "failedstarttls": "sender-config",
    "norelaying": "sender-config",
    "securityerror": "sender-config",
    "rejected": "sender-config",
    "syntaxerror": "sender-config",
    "policyviolation": "policy",
    "mesgtoobig": "policy",
    "contenterror": "policy",
    "notcompliantrfc": "policy",
    "filtered": "policy",
    "speeding": "policy",
    "toomanyconn": "transient",
    "expired": "transient",
    "networkerror": "transient",
    "systemerror": "transient",
    "systemfull": "transient",
    "mailererror": "transient",
    "feedback": "complaint",
    "vacation": "auto-reply",
    "delivered": "delivered",
    "onhold": "unknown",
    "undefined": "unknown",
}

# Reasons that mean the address is bad and mail to it should stop, when the refusal is permanent
# or the sending server gave up after retrying. `notaccept` counts only with a 5xx code, because
# a "no mail exchanger" answer seen only as 4xx may be a passing DNS failure.
HARD_REASONS = frozenset(("userunknown", "hostunknown", "hasmoved"))
HARD_WITH_PERMANENT_CODE = frozenset(("notaccept",))


def category_of(reason: str) -> str:
    """Return the category of a reason, or "unknown"."""
    return CATEGORIES.get(reason, "unknown")


def is_hard_bounce(reason: str, permanent_code: bool, final_notice: bool) -> bool:
    """Return True if the reason means the address itself is bad and the refusal is final.

    A temporary refusal may clear on a retry, so it is a hard bounce only in a final failure
    notice, after the sending server stopped retrying.
    """
    if reason in HARD_WITH_PERMANENT_CODE:
        return permanent_code
    return reason in HARD_REASONS and (permanent_code or final_notice)
