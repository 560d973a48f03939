"""The gate: an SMTP before-queue filter that refuses spam and viruses during the session.

`server` contains the SMTP hooks, `relay` the client session with the next hop, `scanners` the
content scanners, `config` the settings and reply templates, and `events` the log line, the
decisions file and the counters of each decision.
"""
