"""The spamd, clamd and rspamd clients against private real daemons on 127.0.0.1.

Each daemon starts once per module (see services.py). Tests of protocol errors, oversized
replies and silent servers use small asyncio servers opened by the test itself, because
a real daemon cannot be made to misbehave that way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from services import (EICAR_SIGNATURE, TEST_MARKER, TEST_MARKER_SIGNATURE, Service, clamd_service,
                      eicar_bytes, free_port, rspamd_service, spamd_service)

from bouncewise.gate.scanners import (CLEAN, SPAM, VIRUS, ScanError, ScanResult, Scanner,
                                      build_scanner, clamd, rspamd, spamd)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

GTUBE_MESSAGE = (
    "From: sender@example.com\r\n"
    "To: recipient@example.org\r\n"
    "Subject: GTUBE test\r\n"
    "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <gtube-1@example.com>\r\n"
    "\r\n"
    f"{GTUBE}\r\n").encode("ascii")

PLAIN_MESSAGE = (
    "From: Alice Example <alice@example.com>\r\n"
    "To: Bob Example <bob@example.org>\r\n"
    "Subject: Lunch tomorrow\r\n"
    "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <lunch-1@example.com>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "Shall we meet for lunch tomorrow at noon?\r\n"
    "\r\n"
    "Alice\r\n").encode("ascii")

# Scores 12.5 with rspamd's stock rules: over "add header" (6), under "reject" (15).
ADD_HEADER_MESSAGE = (
    'From: "PayPal" <service@paypa1-secure.example>\r\n'
    "Subject: URGENT ACCOUNT VERIFICATION REQUIRED NOW\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    '<html><body><a href="http://127.0.0.1/login">https://www.paypal.com/login</a> '
    "Click here to verify your account password immediately</body></html>\r\n").encode("ascii")

# The gate's timeout in the tests against a server that never replies.
SILENT_SERVER_TIMEOUT = 0.5
# How long a test waits for its own server to see the client close; only a guard against a hang.
SERVER_EVENT_TIMEOUT = 10.0


def message_with_attachment(content: bytes, filename: str) -> bytes:
    """Build a multipart message with `content` as a base64 attachment."""
    encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
    return (b"From: sender@example.com\r\n"
            b"To: recipient@example.org\r\n"
            b"Subject: the file\r\n"
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="part-boundary"\r\n'
            b"\r\n"
            b"--part-boundary\r\n"
            b"Content-Type: text/plain\r\n"
            b"\r\n"
            b"Here is the file.\r\n"
            b"--part-boundary\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b'Content-Disposition: attachment; filename="' + filename.encode() + b'"\r\n'
            b"\r\n" + encoded +
            b"--part-boundary--\r\n")


def scan(scanner: Scanner, message: bytes) -> ScanResult:
    """Scan as the gate does: inside asyncio.wait_for with the scanner's timeout."""
    return asyncio.run(asyncio.wait_for(scanner.scan(message), scanner.timeout))


# --- Local stand-in servers for misbehaviour that real daemons do not show ---

def headers_and_body_complete(data: bytes) -> bool:
    """Return whether `data` contains a head and the whole Content-Length body, which is how
    both a SPAMC request and an HTTP request are framed."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def clamd_request_complete(data: bytes) -> bool:
    return data.endswith(b"\0\0\0\0")


@contextlib.asynccontextmanager
async def canned_server(reply: bytes, request_complete: Callable[[bytes], bool],
                        requests: list[bytes] | None = None) -> AsyncIterator[int]:
    """Serve `reply` to each connection once its request is complete; yield the port."""
    async def reply_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while not request_complete(data):
            chunk = await reader.read(65_536)
            if not chunk:
                break
            data += chunk
        if requests is not None:
            requests.append(data)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reply_once, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def scan_silent_server(make_scanner: Callable[[int], Scanner]) -> tuple[bool, bool]:
    """Scan inside the gate's wait_for against a server that reads everything and never
    replies. Return whether the server saw the connection, and whether it saw the client
    close it after the time-out."""
    connected = asyncio.Event()
    closed = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        try:
            while await reader.read(65_536):
                pass
        except ConnectionResetError:
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    async with server:
        scanner = make_scanner(server.sockets[0].getsockname()[1])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(scanner.scan(PLAIN_MESSAGE), SILENT_SERVER_TIMEOUT)
        await asyncio.wait_for(closed.wait(), SERVER_EVENT_TIMEOUT)
    return connected.is_set(), closed.is_set()


@pytest.mark.parametrize("make_scanner", [
    lambda port: spamd.from_settings({"address": f"127.0.0.1:{port}"}),
    lambda port: clamd.from_settings({"address": f"127.0.0.1:{port}"}),
    lambda port: rspamd.from_settings({"url": f"http://127.0.0.1:{port}/checkv2"}),
], ids=["spamd", "clamd", "rspamd"])
def test_silent_server_hits_gate_timeout(make_scanner):
    connected, closed = asyncio.run(scan_silent_server(make_scanner))
    assert connected
    assert closed


@pytest.mark.parametrize("make_scanner", [
    lambda port: spamd.from_settings({"address": f"127.0.0.1:{port}"}),
    lambda port: rspamd.from_settings({"url": f"http://127.0.0.1:{port}/checkv2"}),
], ids=["spamd", "rspamd"])
def test_refused_connection_raises_scan_error(make_scanner):
    scanner = make_scanner(free_port())
    with pytest.raises(ScanError, match="connection failed"):
        scan(scanner, PLAIN_MESSAGE)


@pytest.mark.parametrize(("module", "settings", "key"), [
    (spamd, {"address": "127.0.0.1"}, "address"),
    (clamd, {"address": "127.0.0.1"}, "address"),
    (rspamd, {"url": "http://127.0.0.1/checkv2"}, "url"),
], ids=["spamd", "clamd", "rspamd"])
def test_build_scanner_accepts_type_key(module, settings, key):
    scanner = build_scanner({"type": module.__name__.rsplit(".", 1)[1], **settings})
    assert scanner.name == module.__name__.rsplit(".", 1)[1]
    assert scanner.timeout == 30.0


# --- spamd ---

@pytest.fixture(scope="module")
def spamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with spamd_service(tmp_path_factory.mktemp("spamd")) as service:
        yield service


def test_spamd_gtube_is_spam(spamd_server):
    result = scan(spamd.from_settings({"address": spamd_server.address}), GTUBE_MESSAGE)
    assert result.verdict == SPAM
    assert result.scanner == "spamd"
    assert result.score is not None and result.threshold is not None
    assert result.score >= result.threshold
    assert "GTUBE" in result.findings


def test_spamd_plain_message_is_clean(spamd_server):
    result = scan(spamd.from_settings({"address": spamd_server.address}), PLAIN_MESSAGE)
    assert result.verdict == CLEAN
    assert result.score is not None and result.threshold is not None
    assert result.score < result.threshold
    assert "GTUBE" not in result.findings


def test_spamd_user_setting_accepted(spamd_server):
    scanner = spamd.from_settings({"address": spamd_server.address, "user": "gate-test",
                                   "name": "spamd-main"})
    result = scan(scanner, GTUBE_MESSAGE)
    assert result.verdict == SPAM
    assert result.scanner == "spamd-main"


def test_spamd_oversize_passes_unscanned(spamd_server):
    scanner = spamd.from_settings({"address": spamd_server.address,
                                   "max_size": len(GTUBE_MESSAGE) - 1})
    result = scan(scanner, GTUBE_MESSAGE)
    assert result.verdict == CLEAN
    assert result.findings == (spamd.NOT_SCANNED_OVER_MAX_SIZE,)
    assert result.score is None


def test_spamd_message_of_max_size_is_scanned(spamd_server):
    scanner = spamd.from_settings({"address": spamd_server.address,
                                   "max_size": len(GTUBE_MESSAGE)})
    result = scan(scanner, GTUBE_MESSAGE)
    assert result.verdict == SPAM


def test_spamd_oversize_skips_without_server():
    # Nothing listens on the port: an oversized message must not even connect.
    scanner = spamd.from_settings({"address": f"127.0.0.1:{free_port()}", "max_size": 10})
    result = scan(scanner, GTUBE_MESSAGE)
    assert result.verdict == CLEAN


def test_spamd_default_max_size_matches_spamc():
    scanner = spamd.from_settings({})
    assert scanner.max_size == 512_000
    assert (scanner.host, scanner.port) == ("127.0.0.1", 783)


def test_spamd_request_headers():
    requests: list[bytes] = []
    reply = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5\r\nSpam: False ; 1.5 / 5.0\r\n\r\nRULE1"

    async def exchange() -> ScanResult:
        async with canned_server(reply, headers_and_body_complete, requests) as port:
            scanner = spamd.from_settings({"address": f"127.0.0.1:{port}", "user": "filter"})
            return await scanner.scan(PLAIN_MESSAGE)

    result = asyncio.run(exchange())
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [b"SYMBOLS SPAMC/1.5",
                                   b"Content-length: %d" % len(PLAIN_MESSAGE),
                                   b"User: filter"]
    assert body == PLAIN_MESSAGE
    assert result == ScanResult(CLEAN, "spamd", score=1.5, threshold=5.0, findings=("RULE1",))


@pytest.mark.parametrize(("reply", "error"), [
    (b"SPAMD/1.0 76 Bad header line: (Content-length mismatch: 10 vs. 20)\r\n",
     "spamd returned error 76: Bad header line"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n", "no Spam header"),
    (b"SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n", "invalid Spam header"),
    (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 40\r\nSpam: True ; 9.0 / 5.0\r\n\r\nGTUBE",
     "reply body is 5 bytes"),
    (b"HTTP/1.1 200 OK\r\n\r\n", "invalid reply"),
    (b"", "invalid reply"),
], ids=["ex-code", "no-spam-header", "bad-spam-header", "truncated", "not-spamd", "empty"])
def test_spamd_bad_reply_raises_scan_error(reply, error):
    async def exchange() -> ScanResult:
        async with canned_server(reply, headers_and_body_complete) as port:
            return await spamd.from_settings({"address": f"127.0.0.1:{port}"}).scan(PLAIN_MESSAGE)

    with pytest.raises(ScanError, match=error):
        asyncio.run(exchange())


def test_spamd_early_error_reply_is_reported():
    # The stand-in replies with an error after the request head and closes without reading
    # the body, so the client's send fails.
    reply = b"SPAMD/1.0 76 Bad header line: (Content-length mismatch)\r\n"

    async def exchange() -> ScanResult:
        async with canned_server(reply, lambda data: b"\r\n\r\n" in data) as port:
            scanner = spamd.from_settings({"address": f"127.0.0.1:{port}",
                                           "max_size": 64 * 1_048_576})
            return await scanner.scan(PLAIN_MESSAGE + b"x" * (32 * 1_048_576))

    with pytest.raises(ScanError, match="spamd returned error 76: Bad header line"):
        asyncio.run(exchange())


def test_spamd_oversized_reply_raises_scan_error():
    reply = b"SPAMD/1.1 0 EX_OK\r\n" + b"X" * (spamd.MAX_REPLY_BYTES + 1)

    async def exchange() -> ScanResult:
        async with canned_server(reply, headers_and_body_complete) as port:
            return await spamd.from_settings({"address": f"127.0.0.1:{port}"}).scan(PLAIN_MESSAGE)

    with pytest.raises(ScanError, match=f"exceeds {spamd.MAX_REPLY_BYTES} bytes"):
        asyncio.run(exchange())


@pytest.mark.parametrize(("settings", "error"), [
    ({"adress": "127.0.0.1:783"}, "unknown setting 'adress'"),
    ({"address": "127.0.0.1:99999"}, "invalid port"),
    ({"address": ":783"}, "has no host"),
    ({"address": 783}, "address must be a string"),
    ({"timeout": 0}, "timeout must be a positive number"),
    ({"timeout": "30"}, "timeout must be a positive number"),
    ({"timeout": True}, "timeout must be a positive number"),
    ({"max_size": 0}, "max_size must be a positive whole number"),
    ({"max_size": 1.5}, "max_size must be a positive whole number"),
    ({"user": "a\r\nUser: b"}, "user must be a non-empty string"),
    ({"user": ""}, "user must be a non-empty string"),
])
def test_spamd_bad_settings_raise_value_error(settings, error):
    with pytest.raises(ValueError, match=error):
        spamd.from_settings(settings)


# --- clamd ---

@pytest.fixture(scope="module")
def clamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with clamd_service(tmp_path_factory.mktemp("clamd")) as service:
        yield service


def test_clamd_eicar_attachment_is_virus(clamd_server):
    message = message_with_attachment(eicar_bytes(), "eicar.com")
    result = scan(clamd.from_settings({"address": clamd_server.address}), message)
    assert result.verdict == VIRUS
    assert result.scanner == "clamd"
    assert result.findings == (EICAR_SIGNATURE,)


def test_clamd_own_signature_is_virus(clamd_server):
    message = message_with_attachment(b"report\r\n" + TEST_MARKER + b"\r\n", "report.txt")
    result = scan(clamd.from_settings({"address": clamd_server.address}), message)
    assert result.verdict == VIRUS
    assert result.findings == (TEST_MARKER_SIGNATURE,)


def test_clamd_plain_message_is_clean(clamd_server):
    result = scan(clamd.from_settings({"address": clamd_server.address}), PLAIN_MESSAGE)
    assert result == ScanResult(CLEAN, "clamd")


def test_clamd_unix_socket(clamd_server):
    scanner = clamd.from_settings({"address": f"unix:{clamd_server.unix_socket}"})
    message = message_with_attachment(eicar_bytes(), "eicar.com")
    assert scan(scanner, message).findings == (EICAR_SIGNATURE,)
    assert scan(scanner, PLAIN_MESSAGE).verdict == CLEAN


def test_clamd_small_chunks_still_find_eicar(clamd_server):
    # 7-byte chunks split the signature across many INSTREAM chunks.
    scanner = clamd.from_settings({"address": clamd_server.address, "chunk_size": 7})
    message = message_with_attachment(eicar_bytes(), "eicar.com")
    assert scan(scanner, message).findings == (EICAR_SIGNATURE,)


@pytest.mark.parametrize("size", [2 * 1_048_576, 32 * 1_048_576], ids=["2MiB", "32MiB"])
def test_clamd_stream_over_limit_raises_scan_error(clamd_server, size):
    # The private clamd has StreamMaxLength 1 MiB. At 32 MiB, clamd closes the connection
    # while the client is still sending, and the client must still report clamd's error line.
    message = PLAIN_MESSAGE + b"x" * size
    with pytest.raises(ScanError, match="INSTREAM size limit exceeded"):
        scan(clamd.from_settings({"address": clamd_server.address}), message)


def test_clamd_stopped_raises_scan_error(tmp_path):
    with clamd_service(tmp_path) as service:
        scanner = clamd.from_settings({"address": service.address})
        unix_scanner = clamd.from_settings({"address": f"unix:{service.unix_socket}"})
        assert scan(scanner, PLAIN_MESSAGE).verdict == CLEAN
    with pytest.raises(ScanError, match="connection failed"):
        scan(scanner, PLAIN_MESSAGE)
    with pytest.raises(ScanError, match="connection failed"):
        scan(unix_scanner, PLAIN_MESSAGE)


def test_clamd_request_framing():
    requests: list[bytes] = []

    async def exchange() -> ScanResult:
        async with canned_server(b"stream: OK\0", clamd_request_complete, requests) as port:
            scanner = clamd.from_settings({"address": f"127.0.0.1:{port}", "chunk_size": 4})
            return await scanner.scan(b"0123456789")

    assert asyncio.run(exchange()).verdict == CLEAN
    assert requests[0] == (b"zINSTREAM\0" + b"\0\0\0\x040123" + b"\0\0\0\x044567"
                           + b"\0\0\0\x0289" + b"\0\0\0\0")


@pytest.mark.parametrize(("reply", "error"), [
    (b"stream: Can't allocate memory ERROR\0", "clamd returned error: stream: Can't allocate"),
    (b"UNKNOWN COMMAND\0", "invalid reply 'UNKNOWN COMMAND'"),
    (b"", "connection closed without a reply"),
    (b"stream: OK" + b"x" * clamd.MAX_REPLY_BYTES, f"exceeds {clamd.MAX_REPLY_BYTES} bytes"),
], ids=["error", "unknown", "empty", "oversized"])
def test_clamd_bad_reply_raises_scan_error(reply, error):
    async def exchange() -> ScanResult:
        async with canned_server(reply, clamd_request_complete) as port:
            return await clamd.from_settings({"address": f"127.0.0.1:{port}"}).scan(PLAIN_MESSAGE)

    with pytest.raises(ScanError, match=error):
        asyncio.run(exchange())


@pytest.mark.parametrize(("settings", "error"), [
    ({"chunksize": 4096}, "unknown setting 'chunksize'"),
    ({"address": "unix:"}, "has no socket path"),
    ({"address": "127.0.0.1:0"}, "invalid port"),
    ({"address": "clamd.example:x"}, "invalid port"),
    ({"timeout": -1}, "timeout must be a positive number"),
    ({"timeout": float("inf")}, "timeout must be a positive number"),
    ({"chunk_size": 0}, "chunk_size must be a whole number of bytes"),
    ({"chunk_size": 2**32}, "chunk_size must be a whole number of bytes"),
    ({"name": ""}, "name must be a non-empty string"),
])
def test_clamd_bad_settings_raise_value_error(settings, error):
    with pytest.raises(ValueError, match=error):
        clamd.from_settings(settings)


def test_clamd_settings_defaults():
    scanner = clamd.from_settings({"type": "clamd"})
    assert (scanner.host, scanner.port, scanner.chunk_size) == ("127.0.0.1", 3310, 65_536)
    assert clamd.from_settings({"address": "unix:/run/clamav/clamd.ctl"}).port is None


# --- rspamd ---

@pytest.fixture(scope="module")
def rspamd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with rspamd_service(tmp_path_factory.mktemp("rspamd")) as service:
        yield service


def rspamd_url(service: Service, path: str = "/checkv2") -> str:
    return f"http://{service.address}{path}"


def test_rspamd_gtube_is_spam(rspamd_server):
    result = scan(rspamd.from_settings({"url": rspamd_url(rspamd_server)}), GTUBE_MESSAGE)
    assert result.verdict == SPAM
    assert result.scanner == "rspamd"
    assert result.score is not None and result.threshold is not None
    assert result.score >= result.threshold
    assert "GTUBE" in result.findings


def test_rspamd_plain_message_is_clean(rspamd_server):
    result = scan(rspamd.from_settings({"url": rspamd_url(rspamd_server)}), PLAIN_MESSAGE)
    assert result.verdict == CLEAN
    assert result.score is not None and result.threshold is not None
    assert result.score < result.threshold


def test_rspamd_add_header_is_clean_by_default(rspamd_server):
    result = scan(rspamd.from_settings({"url": rspamd_url(rspamd_server)}), ADD_HEADER_MESSAGE)
    assert result.verdict == CLEAN
    assert result.score is not None and result.threshold is not None
    assert 6 <= result.score < result.threshold
    assert "SUBJ_ALL_CAPS" in result.findings


def test_rspamd_add_header_is_spam_when_configured(rspamd_server):
    scanner = rspamd.from_settings({"url": rspamd_url(rspamd_server),
                                    "spam_actions": ["reject", "add header"]})
    assert scan(scanner, ADD_HEADER_MESSAGE).verdict == SPAM
    assert scan(scanner, PLAIN_MESSAGE).verdict == CLEAN


def test_rspamd_findings_sorted_by_score(rspamd_server):
    result = scan(rspamd.from_settings({"url": rspamd_url(rspamd_server)}), ADD_HEADER_MESSAGE)
    # SUBJ_ALL_CAPS (3.0) and MISSING_MID (2.5) are the highest-scoring stock symbols here.
    assert result.findings[:2] == ("SUBJ_ALL_CAPS", "MISSING_MID")


def test_rspamd_password_accepted_by_normal_worker(rspamd_server):
    scanner = rspamd.from_settings({"url": rspamd_url(rspamd_server), "password": "q1"})
    assert scan(scanner, GTUBE_MESSAGE).verdict == SPAM


def test_rspamd_unknown_path_raises_scan_error(rspamd_server):
    scanner = rspamd.from_settings({"url": rspamd_url(rspamd_server, "/nosuchendpoint")})
    # rspamd 3.4 replies "500 invalid command" to a path it does not serve.
    with pytest.raises(ScanError, match="HTTP 500 invalid command"):
        scan(scanner, PLAIN_MESSAGE)


def canned_http(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}"
            f"Connection: close\r\n\r\n").encode("ascii") + body


def rspamd_reply(**fields: Any) -> bytes:
    reply = {"is_skipped": False, "score": 3.0, "required_score": 15.0, "action": "no action",
             "symbols": {}} | fields
    return json.dumps(reply).encode("utf-8")


def exchange_with_canned_rspamd(response: bytes, settings: dict[str, Any] | None = None,
                                requests: list[bytes] | None = None) -> ScanResult:
    async def exchange() -> ScanResult:
        async with canned_server(response, headers_and_body_complete, requests) as port:
            scanner = rspamd.from_settings({"url": f"http://127.0.0.1:{port}/checkv2",
                                            **(settings or {})})
            return await scanner.scan(PLAIN_MESSAGE)
    return asyncio.run(exchange())


def test_rspamd_request_headers():
    requests: list[bytes] = []
    exchange_with_canned_rspamd(canned_http(rspamd_reply()), {"password": "secret"}, requests)
    head, _, body = requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /checkv2 HTTP/1.1"
    assert b"Content-Length: %d" % len(PLAIN_MESSAGE) in lines
    assert b"Connection: close" in lines
    assert b"Password: secret" in lines
    assert any(line.startswith(b"Host: 127.0.0.1:") for line in lines)
    assert body == PLAIN_MESSAGE


def test_rspamd_findings_capped_at_max():
    symbols = {f"SYMBOL_{index:02d}": {"name": f"SYMBOL_{index:02d}", "score": float(index)}
               for index in range(30)}
    result = exchange_with_canned_rspamd(canned_http(rspamd_reply(symbols=symbols)))
    assert len(result.findings) == rspamd.MAX_FINDINGS
    assert result.findings[0] == "SYMBOL_29"
    assert result.findings[-1] == "SYMBOL_10"


def test_rspamd_chunked_response():
    body = rspamd_reply(action="reject", score=20.0)
    chunked = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + chunked)
    result = exchange_with_canned_rspamd(response)
    assert result == ScanResult(SPAM, "rspamd", score=20.0, threshold=15.0)


def test_rspamd_early_error_response_is_reported():
    # The stand-in replies 413 after the request head and closes without reading the body.
    async def exchange() -> ScanResult:
        response = canned_http(b'{"error":"message too large"}', "413 Payload Too Large")
        async with canned_server(response, lambda data: b"\r\n\r\n" in data) as port:
            scanner = rspamd.from_settings({"url": f"http://127.0.0.1:{port}/checkv2"})
            return await scanner.scan(PLAIN_MESSAGE + b"x" * (32 * 1_048_576))

    with pytest.raises(ScanError, match="HTTP 413 Payload Too Large: message too large"):
        asyncio.run(exchange())


@pytest.mark.parametrize(("response", "error"), [
    (canned_http(b'{"error":"invalid password"}', "403 Forbidden"),
     "HTTP 403 Forbidden: invalid password"),
    (canned_http(b"<html>bad gateway</html>", "502 Bad Gateway"), "HTTP 502 Bad Gateway"),
    (canned_http(b"{not json"), "invalid JSON"),
    (canned_http(b"[1, 2]"), "expected a JSON object"),
    (canned_http(b'{"score": 1.0}'), "no action"),
    (canned_http(b'{"action": "reject", "score": "high"}'), "score is 'high'"),
    (canned_http(b'{"action": "reject", "symbols": []}'), "symbols is not a JSON object"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{}", "Content-Length is '500'"),
    (b"SPAMD/1.1 0 EX_OK\r\n\r\n", "invalid HTTP status line"),
    (b"", "connection closed without a response"),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b" " * rspamd.MAX_RESPONSE_BYTES,
     f"exceeds {rspamd.MAX_RESPONSE_BYTES} bytes"),
], ids=["403", "502", "bad-json", "json-array", "no-action", "bad-score", "bad-symbols",
        "truncated", "not-http", "empty", "oversized"])
def test_rspamd_bad_response_raises_scan_error(response, error):
    with pytest.raises(ScanError, match=error):
        exchange_with_canned_rspamd(response)


@pytest.mark.parametrize(("settings", "error"), [
    ({"address": "127.0.0.1:11333"}, "unknown setting 'address'"),
    ({"url": "https://127.0.0.1:11333/checkv2"}, "must start with http://"),
    ({"url": "http://user:pw@127.0.0.1:11333/checkv2"}, "contains a user name or password"),
    ({"url": "http://127.0.0.1:port/checkv2"}, "invalid port"),
    ({"url": "http:///checkv2"}, "has no host"),
    ({"url": 11333}, "url must be a string"),
    ({"timeout": 0}, "timeout must be a positive number"),
    ({"spam_actions": "reject"}, "spam_actions must be a non-empty list"),
    ({"spam_actions": []}, "spam_actions must be a non-empty list"),
    ({"spam_actions": ["add_header"]}, "unknown action 'add_header'"),
    ({"spam_actions": ["no action"]}, "unknown action 'no action'"),
    ({"password": "a\nb"}, "password must be a non-empty string"),
])
def test_rspamd_bad_settings_raise_value_error(settings, error):
    with pytest.raises(ValueError, match=error):
        rspamd.from_settings(settings)


def test_rspamd_settings_defaults():
    scanner = rspamd.from_settings({"type": "rspamd"})
    assert (scanner.host, scanner.port, scanner.target) == ("127.0.0.1", 11333, "/checkv2")
    assert scanner.spam_actions == frozenset({"reject"})
    assert rspamd.from_settings({"url": "http://[::1]:11333/checkv2?x=1"}).target == "/checkv2?x=1"


def test_eicar_helper_builds_standard_file(tmp_path: Path):
    from services import write_eicar
    data = write_eicar(tmp_path / "eicar.com").read_bytes()
    assert len(data) == 68
    assert data.startswith(b"X5O!P%@AP")
    assert data.endswith(b"-TEST-FILE!$H+H*")
