"""The ledger: an application's bounce bookkeeping that tells a spam refusal from a dead address.

`store` keeps bounces, per-recipient state and queued notices in SQLite or PostgreSQL;
`intake` classifies and records messages; `policy` decides per category; `verp` makes and checks
signed return paths; `notify` delivers notices to senders.
"""
