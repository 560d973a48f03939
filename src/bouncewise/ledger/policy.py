"""Decisions by category: what one more bounce means for a recipient address.

The rule of the ledger is that only evidence about the address itself can suppress it:

- bad-address: suppressed after `bad_address_bounces` hard bounces (default 1);
- mailbox-unavailable and transient: a score that grows by at most one step a day (Mailman's
  bounce score). It suppresses only once it reaches the threshold over several days. It starts
  again when the address has been quiet for a while or a delivery report comes;
- complaint: suppressed at once, because the recipient asked not to be mailed;
- spam-block, virus, sender-config, policy: never suppressed, because they are no evidence about
  the address; the sender is notified instead;
- auto-reply, delivered, unknown: recorded only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from bouncewise.ledger.config import PolicySettings

__all__ = ["Outcome", "apply"]

# Categories whose bounces add to the soft-bounce score, with their weight's setting.
_SOFT_CATEGORIES = ("mailbox-unavailable", "transient")

# Categories with no evidence about the address: the sender's mail or setup was refused.
SENDER_CATEGORIES = frozenset(("spam-block", "virus", "sender-config", "policy"))


# Days kept of one recipient's soft-bounce history; older ones no longer affect the score.
MAX_SCORE_DAYS = 366


@dataclass(frozen=True, slots=True)
class Outcome:
    """The recipient's new soft-bounce days and suppression, and the decision in words."""

    score_days: dict[str, float]
    suppress: bool
    decision: str

    @property
    def bounce_score(self) -> float:
        return sum(self.score_days.values())


def apply(category: str, hard_bounce: bool, occurred_at: datetime, counts: dict[str, int],
          score_days: dict[str, float], settings: PolicySettings) -> Outcome:
    """Return the outcome of one more event of `category` for a recipient.

    `counts` already includes this event; `score_days` is the recipient's soft-bounce weight
    per day before it. The result does not depend on the order events are taken in.
    """
    keep = Outcome(dict(score_days), False, "")

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
        return _record(keep, f"{category}: not about the address; the sender is notified")

    if category == "delivered":
        return Outcome({}, False, "delivered: the soft-bounce score starts again")

    if category in _SOFT_CATEGORIES:
        return _soft(category, occurred_at, score_days, settings)

    return _record(keep, f"{category}: recorded only")


def _soft(category: str, occurred_at: datetime, score_days: dict[str, float],
          settings: PolicySettings) -> Outcome:
    """Count one soft bounce on its day, at most one step a day, and decide."""
    weight = 1.0 if category == "mailbox-unavailable" else settings.transient_weight
    day = occurred_at.date().isoformat()
    days = dict(score_days)
    days[day] = max(days.get(day, 0.0), weight)

    run = _current_run(days, settings.score_stale_days)
    # Days before the current run no longer count; keeping them bounded keeps the row small.
    days = dict(sorted(run.items())[-MAX_SCORE_DAYS:])
    score = sum(days.values())
    first, last = date.fromisoformat(min(days)), date.fromisoformat(max(days))
    span_days = (last - first).days

    ready = score >= settings.soft_score_threshold and span_days >= settings.soft_min_days
    text = (f"{category}: score {score:g} of {settings.soft_score_threshold:g} over "
            f"{span_days} of at least {settings.soft_min_days} days")
    return Outcome(days, ready, ("suppressed: " if ready else "") + text)


def _current_run(days: dict[str, float], stale_days: int) -> dict[str, float]:
    """Return the days of the latest run: days no more than `stale_days` apart, back from the
    latest one. A longer quiet gap means the address recovered before the run began."""
    ordered = sorted(days)
    start = len(ordered) - 1
    while start > 0 and (date.fromisoformat(ordered[start])
                         - date.fromisoformat(ordered[start - 1])).days <= stale_days:
        start -= 1
    return {day: days[day] for day in ordered[start:]}


def _suppress(outcome: Outcome, why: str) -> Outcome:
    return Outcome(outcome.score_days, True, f"suppressed: {why}")


def _record(outcome: Outcome, why: str) -> Outcome:
    return Outcome(outcome.score_days, False, why)
