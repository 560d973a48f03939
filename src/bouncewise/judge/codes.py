"""Enhanced status codes (RFC 3463 and the IANA "SMTP Enhanced Status Codes" registry) that name
one reason on their own, and the codes derived for a reason when a bounce gives none.

Codes missing here, such as 5.0.0, 5.5.0 or the 5.7.1 that servers use for every kind of
refusal, say too little alone: the judge reads the reply text for those.
"""

# Status subject.detail -> reason. The class digit (4 or 5) is not part of the key.
STATUS_REASONS: dict[str, str] = {
    "1.1": "userunknown",        # Bad destination mailbox address
    "1.2": "hostunknown",        # Bad destination system address
    "1.3": "userunknown",        # Bad destination mailbox address syntax
    "1.4": "userunknown",        # Destination mailbox address ambiguous
    "1.6": "hasmoved",           # Destination mailbox has moved, no forwarding address
    "1.7": "rejected",           # Bad sender's mailbox address syntax
    "1.8": "rejected",           # Bad sender's system address
    "1.10": "notaccept",         # Recipient address has null MX (RFC 7505)
    # X.2.0 and X.2.1 ("mailbox disabled, not accepting messages") are what recipient-side filters
    # send, notably at the Japanese mobile carriers, far more often than a disabled mailbox.
    "2.0": "filtered",           # Other or undefined mailbox status
    "2.1": "filtered",           # Mailbox disabled, not accepting messages
    "2.2": "mailboxfull",        # Mailbox full
    "2.3": "exceedlimit",        # Message length exceeds administrative limit
    "3.1": "systemfull",         # Mail system full
    "3.2": "notaccept",          # System not accepting network messages
    "3.4": "mesgtoobig",         # Message too big for system
    "4.3": "systemerror",        # Directory server failure
    "4.4": "hostunknown",        # Unable to route
    "4.6": "networkerror",       # Routing loop detected
    "5.3": "syntaxerror",        # Too many recipients
    "5.4": "syntaxerror",        # Invalid command arguments
    "6.0": "contenterror",       # Other or undefined media error
    "6.1": "contenterror",       # Media not supported
    "7.7": "securityerror",      # Message integrity failure
    "7.10": "failedstarttls",    # Encryption needed
    "7.13": "suspend",           # User account disabled
    "7.20": "authfailure",       # No passing DKIM signature found
    "7.21": "authfailure",       # No acceptable DKIM signature found
    "7.22": "authfailure",       # No valid author-matched DKIM signature found
    "7.23": "authfailure",       # SPF validation failed
    "7.24": "authfailure",       # SPF validation error
    "7.25": "requireptr",        # Reverse DNS validation failed
    "7.26": "authfailure",       # Multiple authentication checks failed
    "7.27": "notaccept",         # Sender address has null MX
    "7.28": "spamdetected",      # Mail flood detected
    "7.29": "authfailure",       # ARC validation failure
    "7.30": "securityerror",     # REQUIRETLS support required
}

# Details too general to outweigh any phrase, used only when the text names no reason.
FALLBACK_STATUS_REASONS: dict[str, str] = {
    "1.0": "userunknown",        # Other address status
    "3.0": "systemerror",        # Other or undefined mail system status
    "5.0": "syntaxerror",        # Other or undefined protocol status
    # A final failure after "no answer from host" means the sender stopped retrying.
    "4.1": "expired",            # No answer from host
    # Reporting MTAs put 4.4.7 on every message they stop retrying, whatever the cause was.
    "4.7": "expired",            # Delivery time expired
}

# Reason -> the status code reported when a bounce carries none (class digit added by the judge).
DERIVED_STATUS: dict[str, str] = {
    "userunknown": "1.1",
    "hostunknown": "1.2",
    "hasmoved": "1.6",
    "rejected": "1.8",
    "notaccept": "1.10",
    "suspend": "2.1",
    "mailboxfull": "2.2",
    "exceedlimit": "2.3",
    "systemfull": "3.1",
    "mesgtoobig": "3.4",
    "systemerror": "3.0",
    "networkerror": "4.1",
    "expired": "4.7",
    "syntaxerror": "5.2",
    "contenterror": "6.0",
    "notcompliantrfc": "6.0",
    "mailererror": "3.0",
    "norelaying": "7.1",
    "securityerror": "7.0",
    "authfailure": "7.26",
    "requireptr": "7.25",
    "failedstarttls": "7.10",
    "spamdetected": "7.1",
    "virusdetected": "7.1",
    "blocked": "7.1",
    "badreputation": "7.1",
    "policyviolation": "7.1",
    "filtered": "7.1",
    "speeding": "7.1",
    "toomanyconn": "4.5",
}
