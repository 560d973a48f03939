"""Decisions by category: what one more bounce means for a recipient address.

The rule of the ledger is that only evidence about the address itself can suppress it:

- bad-address: suppressed after `bad_address_bounces` hard bounces (default 1);
- mailbox-unavailable and transient: a score that grows by at most one step a day (Mailman's
  bounce score). It suppresses only once it reaches the threshold over several days. It starts
  again when the address has been quiet for a while or a delivery report comes;
- complaint: suppressed at once, because the recipient asked not to be mailed;
- spam-block, virus, sender-config, policy: never suppressed, because they say nothing about the
  address; the sender is told instead;
- auto-reply, delivered, unknown: recorded only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bouncewise.ledger.config import PolicySettings

__all__ = ["Outcome", "apply"]

# Categories whose bounces add to the soft-bounce score, with their weight's setting.
_SOFT_CATEGORIES = ("mailbox-unavailable", "transient")

# Categories with no evidence about the address: the sender's mail or setup was refused.
SENDER_CATEGORIES = frozenset(("spam-block", "virus", "sender-config", "policy"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The recipient's new score and suppression, and the decision in words."""

    bounce_score: float
    score_started: datetime | None
    score_updated: datetime | None
    suppress: bool
    decision: str


def apply(category: str, hard_bounce: bool, occurred_at: datetime, counts: dict[str, int],
          bounce_score: float, score_started: datetime | None, score_updated: datetime | None,
          settings: PolicySettings) -> Outcome:
    """Return the outcome of one more event of `category` for a recipient.

    `counts` already includes this event; the score arguments are the recipient's before it.
    """
    keep = Outcome(bounce_score, score_started, score_updated, False, "")

    if category == "bad-address":
        hard = counts.get("bad-address", 0)
        if hard_bounce and hard >= settings.bad_address_bounces:
            return _suppress(keep, f"{hard} hard bounce{'s' if hard > 1 else ''}: "
                                   f"the address does not exist")
        return _record(keep, f"bad address, {hard} of {settings.bad_address_bounces} "
                             f"hard bounces")

    if category == "complaint":
        if settings.suppress_complaints:
            return _suppress(keep, "complaint: the recipient asked not to be mailed")
        return _record(keep, "complaint recorded")

    if category in SENDER_CATEGORIES:
        return _record(keep, f"{category}: not about the address; the sender is told")

    if category == "delivered":
        return Outcome(0.0, None, None, False, "delivered: the soft-bounce score starts again")

    if category in _SOFT_CATEGORIES:
        return _soft(category, occurred_at, bounce_score, score_started, score_updated,
                     settings)

    return _record(keep, f"{category}: recorded only")


def _soft(category: str, occurred_at: datetime, bounce_score: float,
          score_started: datetime | None, score_updated: datetime | None,
          settings: PolicySettings) -> Outcome:
    """Add one soft bounce to the score, at most one step a day, and decide."""
    if score_updated is not None and occurred_at - score_updated > timedelta(
            days=settings.score_stale_days):
        # Quiet for longer than the stale time: the address recovered, so count afresh.
        bounce_score, score_started, score_updated = 0.0, None, None

    weight = 1.0 if category == "mailbox-unavailable" else settings.transient_weight
    if score_updated is None or occurred_at.date() > score_updated.date():
        bounce_score += weight
        score_updated = occurred_at
    if score_started is None:
        score_started = occurred_at

    span_days = (occurred_at - score_started).days
    ready = bounce_score >= settings.soft_score_threshold and span_days >= settings.soft_min_days
    text = (f"{category}: score {bounce_score:g} of {settings.soft_score_threshold:g} over "
            f"{span_days} of at least {settings.soft_min_days} days")
    return Outcome(bounce_score, score_started, score_updated, ready,
                   ("suppressed: " if ready else "") + text)


def _suppress(outcome: Outcome, why: str) -> Outcome:
    return Outcome(outcome.bounce_score, outcome.score_started, outcome.score_updated, True,
                   f"suppressed: {why}")


def _record(outcome: Outcome, why: str) -> Outcome:
    return Outcome(outcome.bounce_score, outcome.score_started, outcome.score_updated, False, why)
