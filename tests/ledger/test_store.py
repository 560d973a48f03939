"""The ledger's records and decisions, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from bouncewise.ledger import verp
from bouncewise.ledger.intake import Intake
from bouncewise.ledger.store import Ledger, LedgerUnavailable
from bouncewise.mail.sources import Item
from bounces import MAILBOX_FULL, SPAM, TEMPORARY, USER_UNKNOWN, postfix_dsn
from ledgerrun import config_for, database_url, postgres_database, postgres_skip_reason  # noqa: F401

SECRET = "test secret, not for production"
VERP = {"secret": SECRET, "domain": "bounce.sender.test"}
DAY = timedelta(days=1)
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _ingest(config, *messages: bytes, ledger: Ledger | None = None) -> Intake:
    own = ledger or Ledger(config)
    intake = Intake(own, config)
    intake.ingest_items(Item(f"message-{number}", data) for number, data in enumerate(messages))
    if ledger is None:
        own.close()
    return intake


def _state(config, address: str):
    ledger = Ledger(config)
    try:
        return ledger.status(address)
    finally:
        ledger.close()


def test_user_unknown_suppressed_after_one_hard_bounce(database_url):
    config = config_for(database_url)
    _ingest(config, postfix_dsn("gone@dest.test", USER_UNKNOWN.format("gone@dest.test")))

    state, events = _state(config, "gone@dest.test")
    assert state.suppressed
    assert state.suppressed_reason == "suppressed: 1 hard bounce: the address does not exist"
    assert [event.reason for event in events] == ["userunknown"]


def test_spam_refusal_never_suppresses(database_url):
    config = config_for(database_url)
    bounces = [postfix_dsn("bob@dest.test", SPAM, arrival=START + DAY * number)
               for number in range(10)]
    _ingest(config, *bounces)

    state, events = _state(config, "bob@dest.test")
    assert not state.suppressed
    assert state.counts == {"spam-block": 10}
    assert events[0].decision == "spam-block: not about the address; the sender is notified"


def test_same_bounce_twice_is_recorded_once(database_url):
    config = config_for(database_url)
    bounce = postfix_dsn("bob@dest.test", SPAM)
    first = _ingest(config, bounce)
    second = _ingest(config, bounce.replace(b"\n", b"\r\n"))

    assert first.stats.messages == 1
    assert second.stats.duplicates == 1
    assert _state(config, "bob@dest.test")[0].counts == {"spam-block": 1}


def test_soft_bounces_suppress_only_over_days(database_url):
    config = config_for(database_url)
    address = "full@dest.test"
    same_day = [postfix_dsn(address, MAILBOX_FULL.format(address), arrival=START + timedelta(
        minutes=number)) for number in range(8)]
    _ingest(config, *same_day)
    state, _ = _state(config, address)
    assert state.bounce_score == 1
    assert not state.suppressed

    later = [postfix_dsn(address, MAILBOX_FULL.format(address), arrival=START + DAY * number)
             for number in range(1, 5)]
    _ingest(config, *later)
    state, events = _state(config, address)
    assert state.bounce_score == 5
    assert state.suppressed
    assert events[-1].decision == ("suppressed: mailbox-unavailable: score 5 of 5 over 4 of at "
                                   "least 3 days")


def test_soft_score_starts_again_after_quiet_days(database_url):
    config = config_for(database_url)
    address = "flaky@dest.test"
    first = [postfix_dsn(address, MAILBOX_FULL.format(address), arrival=START + DAY * number)
             for number in range(4)]
    recovered = postfix_dsn(address, MAILBOX_FULL.format(address), arrival=START + DAY * 20)
    _ingest(config, *first, recovered)

    state, _ = _state(config, address)
    assert state.bounce_score == 1
    assert not state.suppressed


def test_transient_bounces_weigh_half(database_url):
    config = config_for(database_url)
    address = "slow@dest.test"
    _ingest(config, *[postfix_dsn(address, TEMPORARY, arrival=START + DAY * number)
                      for number in range(4)])

    state, _ = _state(config, address)
    assert state.bounce_score == 2
    assert state.counts == {"transient": 4}


def test_unsuppress_lifts_and_resets(database_url):
    config = config_for(database_url)
    _ingest(config, postfix_dsn("gone@dest.test", USER_UNKNOWN.format("gone@dest.test")))
    ledger = Ledger(config)
    try:
        assert ledger.unsuppress("GONE@dest.test")
        assert not ledger.unsuppress("gone@dest.test")
        assert ledger.suppressed() == []
    finally:
        ledger.close()


def test_verp_token_names_the_recipient(database_url):
    config = config_for(database_url, verp=VERP)
    return_path = verp.encode("alice@dest.test", SECRET, "bounce.sender.test", tag="user-42")
    # The bounce names a forwarding address, not the one the application sent to.
    bounce = postfix_dsn("alice@dest.test", USER_UNKNOWN.format("old-alice@forward.test"),
                         to=return_path, final_recipient="old-alice@forward.test")
    _ingest(config, bounce)

    state, events = _state(config, "alice@dest.test")
    assert state.suppressed
    assert events[0].tag == "user-42"
    assert _state(config, "old-alice@forward.test")[0] is None


def test_verp_token_for_bounce_without_recipient(database_url):
    config = config_for(database_url, verp=VERP)
    return_path = verp.encode("carol@dest.test", SECRET, "bounce.sender.test")
    bounce = (f"From: MAILER-DAEMON@mx.sender.test\nTo: {return_path}\n"
              f"Subject: Mail delivery failed\nAuto-Submitted: auto-replied\n\n"
              f"Your message could not be delivered.\nThe remote server said: {SPAM}\n")
    _ingest(config, bounce.encode())

    state, _ = _state(config, "carol@dest.test")
    assert state.counts == {"spam-block": 1}


def test_forged_verp_token_is_refused_and_logged(database_url, caplog):
    config = config_for(database_url, verp=VERP)
    forged = verp.encode("victim@dest.test", "another key", "bounce.sender.test")
    bounce = postfix_dsn("bob@dest.test", USER_UNKNOWN.format("bob@dest.test"), to=forged)
    with caplog.at_level("WARNING", "bouncewise.ledger"):
        _ingest(config, bounce)

    assert _state(config, "victim@dest.test")[0] is None
    assert _state(config, "bob@dest.test")[0].suppressed
    assert any("signature does not verify" in record.getMessage() for record in caplog.records)


def test_unreadable_message_is_recorded_and_intake_goes_on(database_url):
    config = config_for(database_url)
    intake = _ingest(config, b"\x00\x01\x02 binary garbage",
                     postfix_dsn("bob@dest.test", SPAM))

    assert intake.stats.messages == 2
    assert intake.stats.unreadable == 1
    assert _state(config, "bob@dest.test")[0] is not None


def test_unreachable_database_is_ledger_unavailable(tmp_path):
    config = config_for(f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}")
    with pytest.raises(LedgerUnavailable, match="unable to open database file"):
        Ledger(config)


def _ingest_in_process(url: str, messages: list[bytes]) -> None:
    _ingest(config_for(url), *messages)


@pytest.mark.skipif(postgres_skip_reason() is not None, reason=postgres_skip_reason() or "")
def test_parallel_ingesters_never_double_count():
    bounces = [postfix_dsn(f"user{number}@dest.test", SPAM) for number in range(60)]
    with postgres_database() as url:
        Ledger(config_for(url)).close()
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_ingest_in_process, args=(url, bounces))
                   for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)

        assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
        config = config_for(url)
        for number in (0, 30, 59):
            assert _state(config, f"user{number}@dest.test")[0].counts == {"spam-block": 1}


def test_same_bounce_twice_in_one_batch(database_url):
    config = config_for(database_url)
    bounce = postfix_dsn("bob@dest.test", SPAM)
    intake = _ingest(config, bounce, bounce)

    assert intake.stats.messages == 1
    assert intake.stats.duplicates == 1
    assert _state(config, "bob@dest.test")[0].counts == {"spam-block": 1}


def test_soft_score_does_not_depend_on_intake_order(database_url):
    config = config_for(database_url)
    address = "full@dest.test"
    newest_first = [postfix_dsn(address, MAILBOX_FULL.format(address), arrival=START + DAY * day)
                    for day in (4, 0, 1, 2, 3)]
    _ingest(config, *newest_first)

    state, _ = _state(config, address)
    assert state.bounce_score == 5
    assert state.suppressed


def test_event_time_is_the_bounce_date(database_url):
    config = config_for(database_url)
    # The returned message was sent on November 2; the bounces were written on later days.
    bounces = [postfix_dsn("full@dest.test", MAILBOX_FULL.format("full@dest.test"),
                           arrival=START + DAY * day, original_date=START)
               for day in range(3)]
    _ingest(config, *bounces)

    _, events = _state(config, "full@dest.test")
    assert [event.occurred_at.day for event in events] == [2, 3, 4]


def test_no_mail_notice_to_our_own_return_path(database_url):
    from sqlalchemy import select

    from bouncewise.ledger.models import Notice

    config = config_for(database_url, verp=VERP, notify={"mail": {"relay": "127.0.0.1:2525"}})
    return_path = verp.encode("bob@dest.test", SECRET, "bounce.sender.test", tag="user-7")
    _ingest(config, postfix_dsn("bob@dest.test", SPAM, to=return_path, sender=return_path))

    ledger = Ledger(config)
    try:
        with ledger.transaction() as session:
            channels = list(session.execute(select(Notice.channel)).scalars())
    finally:
        ledger.close()
    assert channels == []
