"""A private Dovecot IMAP server on 127.0.0.1 for the ledger's tests.

Each server gets its own temporary folder with its configuration, a passwd-file with one user,
the Maildirs, the log and the run-time sockets, and listens on free loopback ports only. Plain
IMAP accepts the password without TLS because nothing leaves the machine. With `tls=True` a
self-signed certificate for 127.0.0.1 and localhost is made with `openssl`, and the server
also offers implicit TLS and STARTTLS.

Run as root, Dovecot needs its mail processes under another user: the Maildirs belong to
`nobody`, and the temporary folder is readable by all so that `nobody` can reach them. The
passwd-file contains the test password in clear text, a throwaway password for a server bound
to 127.0.0.1.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT_MISSING = "dovecot not installed: apt-get install dovecot-imapd"
OPENSSL_MISSING = "openssl not installed: apt-get install openssl"

USER = "bounces"
PASSWORD = "loopback-test-password"

# Seconds to wait for the server to accept connections, and for it to exit on SIGTERM.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

# Seconds the test's own IMAP client waits for the server.
CLIENT_TIMEOUT = 10.0

# Where Debian (/usr/lib/dovecot) and other systems (/usr/libexec/dovecot) keep the IMAP
# processes that dovecot-imapd installs.
_LIBEXEC_DIRS = ("/usr/lib/dovecot", "/usr/libexec/dovecot")


def dovecot_binary() -> str | None:
    """Return the path of the dovecot master, or None where it or its IMAP part is missing."""
    binary = shutil.which("dovecot") or next(
        (path for path in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(path)),
        None)
    if binary is None:
        return None
    if not any(os.path.exists(os.path.join(folder, "imap-login")) for folder in _LIBEXEC_DIRS):
        return None
    return binary


@dataclass
class Dovecot:
    """A running private Dovecot: its folder, ports and process."""

    binary: str
    root: Path
    port: int
    tls_port: int
    cert_file: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    def imap_table(self, **overrides: object) -> dict[str, object]:
        """Return an `[imap]` table for plain IMAP to this server, with `overrides` applied."""
        table: dict[str, object] = dict(host="127.0.0.1", port=self.port, security="none",
                                        user=USER, password=PASSWORD, timeout=CLIENT_TIMEOUT)
        table.update(overrides)
        return table

    def connect(self) -> imaplib.IMAP4:
        """Return an IMAP client logged in as the test user."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        client.login(USER, PASSWORD)
        return client

    def append(self, message: bytes, mailbox: str = "INBOX", flags: str = "") -> int:
        """Store `message` in `mailbox` as a delivery agent would, and return its UID."""
        client = self.connect()
        try:
            status, data = client.append(_quoted(mailbox), f"({flags})" if flags else None,
                                         None, message)
            assert status == "OK", f"APPEND to {mailbox} failed: {data}"
            # The server responds with "[APPENDUID <uidvalidity> <uid>] Append completed".
            response = data[0]
            assert isinstance(response, bytes), f"unexpected APPEND response {data!r}"
            return int(response.split(b"]")[0].split()[-1])
        finally:
            client.logout()

    def create(self, mailbox: str) -> None:
        client = self.connect()
        try:
            status, data = client.create(_quoted(mailbox))
            assert status == "OK", f"CREATE {mailbox} failed: {data}"
        finally:
            client.logout()

    def flags(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """Return the flags of every message in `mailbox`, by UID, read without changing them."""
        client = self.connect()
        try:
            status, data = client.select(_quoted(mailbox), readonly=True)
            assert status == "OK", f"EXAMINE {mailbox} failed: {data}"
            if data[0] == b"0":
                return {}
            status, lines = client.fetch("1:*", "(UID FLAGS)")
            assert status == "OK", f"FETCH FLAGS in {mailbox} failed: {lines}"
        finally:
            client.logout()

        found = {}
        for line in lines:
            assert isinstance(line, bytes), f"unexpected FETCH response {line!r}"
            text = line.decode("ascii")
            uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
            flag_text = text.split("FLAGS (")[1].split(")")[0]
            found[uid] = set(flag_text.split())
        return found

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def launch(self) -> bool:
        """Start the master with the configuration in `root`; return whether it accepts clients."""
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return _wait_ready(self)

    def restart(self) -> None:
        """Stop the server and start it again on the same ports, with the same mailboxes."""
        self.stop()
        if not self.launch():
            raise RuntimeError(f"dovecot did not start again on 127.0.0.1:{self.port}; its "
                               f"log:\n{self.log_tail()}")

    def stop(self) -> None:
        """End the master by its pid, then any process left in its process group."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        # The master was started as the leader of a new process group, whose id is its pid.
        # A child that outlived the master is still in that group.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def start_dovecot(tls: bool = False, extra_config: str = "",
                  global_acl: str | None = None) -> Dovecot:
    """Start a private Dovecot, or skip the test where dovecot (or openssl for TLS) is missing.

    `extra_config` is appended to the configuration file. `global_acl` turns on the acl plugin
    with these lines as the global ACL file ("MAILBOX user=NAME RIGHTS").
    """
    binary = dovecot_binary()
    if binary is None:
        pytest.skip(DOVECOT_MISSING)
    if tls and shutil.which("openssl") is None:
        pytest.skip(OPENSSL_MISSING)

    root = Path(tempfile.mkdtemp(prefix="bouncewise-dovecot-"))
    try:
        return _start(binary, root, tls, extra_config, global_acl)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start(binary: str, root: Path, tls: bool, extra_config: str,
           global_acl: str | None) -> Dovecot:
    root.chmod(0o755)
    owner = _mail_owner()
    mail_root = root / "mail"
    mail_root.mkdir()
    os.chown(mail_root, owner.pw_uid, owner.pw_gid)
    (root / "run").mkdir()
    (root / "state").mkdir()
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{owner.pw_uid}:{owner.pw_gid}::"
                                 f"{mail_root / USER}::\n")

    cert_file = _make_certificate(root) if tls else None
    if global_acl is not None:
        (root / "acl").write_text(global_acl.strip() + "\n")

    # Two tries: another program can take a free port between the check and Dovecot's bind.
    attempts = 2
    for attempt in range(1, attempts + 1):
        port, tls_port = _free_port(), _free_port() if tls else 0
        (root / "dovecot.conf").write_text(
            _config(root, port, tls_port, owner, tls, global_acl is not None) + extra_config)
        server = Dovecot(binary, root, port, tls_port, cert_file)
        if server.launch():
            break
        server.stop()
        if attempt == attempts or "Address already in use" not in server.log_tail():
            raise RuntimeError(f"dovecot did not start on 127.0.0.1:{port}; its log:\n"
                               f"{server.log_tail()}")
    return server


def _mail_owner() -> pwd.struct_passwd:
    """Return the user that owns the Maildirs: `nobody` when run as root, else the current user."""
    if os.geteuid() == 0:
        return pwd.getpwnam("nobody")
    return pwd.getpwuid(os.geteuid())


def _config(root: Path, port: int, tls_port: int, owner: pwd.struct_passwd, tls: bool,
            acl: bool) -> str:
    lines = [
        f"base_dir = {root / 'run'}",
        f"state_dir = {root / 'state'}",
        f"instance_name = bouncewise-{port}",
        "protocols = imap",
        "listen = 127.0.0.1",
        f"log_path = {root / 'dovecot.log'}",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain",
        # The default delay of two seconds after a failed login would only slow the tests.
        "auth_failure_delay = 0",
        f"first_valid_uid = {owner.pw_uid}",
        f"first_valid_gid = {owner.pw_gid}",
        "mail_location = maildir:~/Maildir",
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN username_format=%u {root / 'passwd'}",
        "}",
        "userdb {",
        "  driver = passwd-file",
        f"  args = username_format=%u {root / 'passwd'}",
        "}",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {port}",
        "  }",
        "  inet_listener imaps {",
        "    address = 127.0.0.1",
        f"    port = {tls_port}",
        "  }",
        "}",
        # Dovecot's other listeners are Unix sockets under base_dir, and none uses TCP.
    ]
    if tls:
        lines += ["ssl = yes", f"ssl_cert = <{root / 'cert.pem'}", f"ssl_key = <{root / 'key.pem'}"]
    else:
        lines += ["ssl = no"]
    if acl:
        lines += ["mail_plugins = $mail_plugins acl",
                  "protocol imap {", "  mail_plugins = $mail_plugins imap_acl", "}",
                  "plugin {", f"  acl = vfile:{root / 'acl'}", "}"]
    if os.geteuid() != 0:
        # Without root, every process runs as the current user and nothing can chroot.
        lines += [f"default_internal_user = {owner.pw_name}",
                  f"default_internal_group = {grp.getgrgid(owner.pw_gid).gr_name}",
                  f"default_login_user = {owner.pw_name}",
                  "service imap-login {", "  chroot =", "}",
                  "service anvil {", "  chroot =", "}"]
    return "\n".join(lines) + "\n"


def _make_certificate(root: Path) -> Path:
    """Write a self-signed certificate for 127.0.0.1 and localhost, valid for two days."""
    cert_file = root / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(root / "key.pem"), "-out", str(cert_file)],
                   check=True, capture_output=True, timeout=60)
    return cert_file


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(server: Dovecot) -> bool:
    """Wait until the server sends its IMAP greeting; return False if it exited first."""
    assert server.process is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as connection:
                if connection.recv(100).startswith(b"* OK"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _quoted(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """Yield a private Dovecot with plain IMAP on a free loopback port, and stop it after."""
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


__all__ = ["Dovecot", "dovecot", "start_dovecot", "dovecot_binary", "USER", "PASSWORD",
           "DOVECOT_MISSING"]
