"""Private spamd, clamd and rspamd instances on 127.0.0.1 for the gate's scanner tests.

Each starter is a context manager. It writes its own configuration under the working
directory it is given and starts the daemon in the foreground on a free loopback port.
Then it waits until the daemon replies to its PING, yields a Service, and stops the
daemon on exit. No starter reads or changes the configuration or data of the machine's
own instance of the service. A starter calls pytest.skip, naming the Debian package,
when the program is not installed. It raises ServiceStartError when the program is
installed but does not start.

Start-up times of test_scanners.py on the 2-core development machine, as printed by
`pytest --log-cli-level=INFO`: clamd 0.1 s, spamd 1 s, rspamd 10 s. Most of rspamd's
time goes to compiling regular expressions into a Hyperscan cache in its fresh working
directory. A restart with that cache in place took 0.6 s.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sink import free_port

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Daemons live in /usr/sbin, which is not on every user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])

SPAMD_START_TIMEOUT = 120.0
CLAMD_START_TIMEOUT = 60.0
# A fresh rspamd compiles its Hyperscan databases before it accepts connections.
RSPAMD_START_TIMEOUT = 300.0
STOP_TIMEOUT = 10.0
PROBE_INTERVAL = 0.1
PROBE_TIMEOUT = 2.0
# Lines of a daemon's log that a start-up error shows.
LOG_TAIL_LINES = 20

# Debian's spamassassin package: the stock rules, and the .pre files that load the plugins.
SPAMASSASSIN_RULES = Path("/usr/share/spamassassin")
SPAMASSASSIN_SITE = Path("/etc/spamassassin")
# Loads rules compiled by sa-compile from /var/lib/spamassassin, which is machine state.
SPAMASSASSIN_SKIPPED_PRE = frozenset({"sa-compile.pre"})
# Debian's rspamd package: actions, symbol groups and composites read by the private instance.
RSPAMD_CONFDIR = Path("/etc/rspamd")

# A string of this project's own, matched by the test signature TEST_MARKER_SIGNATURE.
TEST_MARKER = b"BOUNCEWISE-CLAMD-TEST-MARKER-5b2e9c41"
# clamd appends ".UNOFFICIAL" to the name of every signature that is not from ClamAV's own
# signed databases, so these are the names a scan reports.
EICAR_SIGNATURE = "Bouncewise.Test.EICAR.UNOFFICIAL"
TEST_MARKER_SIGNATURE = "Bouncewise.Test.Marker.UNOFFICIAL"


class ServiceStartError(RuntimeError):
    """A daemon is installed but did not start, or did not reply to its PING in time."""


@dataclass
class Service:
    """A running private daemon."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    startup_seconds: float
    # clamd also listens on a Unix socket here.
    unix_socket: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop the daemon and every process it started; do nothing if it has stopped."""
        stop_process(self.process)


def eicar_bytes() -> bytes:
    """Return the 68-byte EICAR anti-virus test file."""
    # Built from two halves, so that this source file does not contain the test string,
    # because a virus scanner that reads the repository would flag the file.
    first_half = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
    second_half = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    return (first_half + second_half).encode("ascii")


def write_eicar(path: Path) -> Path:
    """Write the EICAR test file to `path` and return the path."""
    path.write_bytes(eicar_bytes())
    return path


def write_clamav_signatures(directory: Path) -> Path:
    """Write a ClamAV body-signature (.ndb) file that detects EICAR and TEST_MARKER.

    Debian's clamav package ships no signature database, and freshclam cannot download
    one without network access, so the private clamd loads only this file.
    """
    # Each line is "name:target type:offset:hex pattern", with target type 0 (any file)
    # and offset * (anywhere). clamd adds ".UNOFFICIAL" to the name when it reports it.
    lines = []
    for reported_name, pattern in ((EICAR_SIGNATURE, eicar_bytes()), (TEST_MARKER_SIGNATURE, TEST_MARKER)):
        name = reported_name.removesuffix(".UNOFFICIAL")
        lines.append(f"{name}:0:*:{pattern.hex()}")
    path = directory / "bouncewise-test.ndb"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def find_program(name: str, package: str) -> str:
    """Return the path of `name`, or skip the calling test when it is not installed."""
    program = shutil.which(name, path=SEARCH_PATH)
    if program is None:
        pytest.skip(f"{name} not installed: apt-get install {package}")
    return program


@contextmanager
def spamd_service(workdir: Path) -> Iterator[Service]:
    """Run a private spamd on 127.0.0.1 with Debian's stock rules and local tests only.

    spamd reads the rules from /usr/share/spamassassin and copies of the plugin-loading
    .pre files from /etc/spamassassin. Started as root, spamd 4.0 switches its effective
    user to "nobody" before it reads that configuration, and scans as "nobody" too. So
    the site configuration and home directory go to a directory that every user can read,
    made in the system's temporary directory and removed on exit. The log, pid file and
    output go to `workdir`.
    """
    program = find_program("spamd", "spamd")
    if not (SPAMASSASSIN_RULES / "20_body_tests.cf").is_file():
        pytest.skip(f"SpamAssassin rules not found in {SPAMASSASSIN_RULES}: apt-get install spamassassin")
    pre_files = sorted(SPAMASSASSIN_SITE.glob("*.pre"))
    if not pre_files:
        pytest.skip(f"SpamAssassin .pre files not found in {SPAMASSASSIN_SITE}: apt-get install spamassassin")

    readable = Path(tempfile.mkdtemp(prefix="bouncewise-spamd-"))
    try:
        readable.chmod(0o755)
        site = readable / "site"
        home = readable / "home"
        site.mkdir()
        home.mkdir()
        for pre in pre_files:
            if pre.name not in SPAMASSASSIN_SKIPPED_PRE:
                shutil.copyfile(pre, site / pre.name)
        # Nothing is learnt from the test messages, so the scores are the same in every run.
        (site / "local.cf").write_text("use_bayes 0\nbayes_auto_learn 0\n", encoding="ascii")

        port = free_port()
        log_path = workdir / "spamd.log"
        command = [program, "--local", "--nouser-config", f"--listen={LOOPBACK}:{port}",
                   f"--allowed-ips={LOOPBACK}", f"--configpath={SPAMASSASSIN_RULES}",
                   f"--siteconfigpath={site}", f"--helper-home-dir={home}",
                   f"--syslog={log_path}", f"--pidfile={workdir / 'spamd.pid'}",
                   "--max-children=2"]

        def answers_ping() -> bool:
            return b" 0 PONG" in exchange(port, b"PING SPAMC/1.5\r\n\r\n")

        with running_service("spamd", command, workdir, port, log_path, answers_ping,
                             SPAMD_START_TIMEOUT) as service:
            yield service
    finally:
        shutil.rmtree(readable, ignore_errors=True)


@contextmanager
def clamd_service(workdir: Path, stream_max_length: int = 1_048_576) -> Iterator[Service]:
    """Run a private clamd on 127.0.0.1 and on a Unix socket in `workdir`.

    Its database directory holds only the file of write_clamav_signatures, and clamd
    rejects INSTREAM data over `stream_max_length` bytes.
    """
    program = find_program("clamd", "clamav-daemon")

    database = workdir / "db"
    temporary = workdir / "tmp"
    database.mkdir(parents=True)
    temporary.mkdir()
    write_clamav_signatures(database)

    port = free_port()
    log_path = workdir / "clamd.log"
    unix_socket = workdir / "clamd.sock"
    config = workdir / "clamd.conf"
    # No User line: clamd keeps the user that starts it, root included, so it can read
    # the working directory.
    config.write_text("\n".join([
        f"TCPSocket {port}",
        f"TCPAddr {LOOPBACK}",
        f"LocalSocket {unix_socket}",
        f"DatabaseDirectory {database}",
        f"TemporaryDirectory {temporary}",
        f"LogFile {log_path}",
        f"PidFile {workdir / 'clamd.pid'}",
        f"StreamMaxLength {stream_max_length}",
        "Foreground yes",
    ]) + "\n", encoding="ascii")

    def answers_ping() -> bool:
        return exchange(port, b"zPING\0") == b"PONG\0"

    with running_service("clamd", [program, f"--config-file={config}"], workdir, port,
                         log_path, answers_ping, CLAMD_START_TIMEOUT) as service:
        service.unix_socket = unix_socket
        yield service


@contextmanager
def rspamd_service(workdir: Path) -> Iterator[Service]:
    """Run a private rspamd normal worker on 127.0.0.1 with its built-in rules only.

    The configuration loads rspamd's regular-expression rules, GTUBE detection and the
    stock actions (reject at 15, add header at 6, greylist at 4) but no Lua plugin. So the
    instance fetches no maps and needs no Redis. Its DNS resolver points at an unused
    loopback port, not at the machine's resolver. No controller or proxy worker runs.
    """
    program = find_program("rspamd", "rspamd")
    if not (RSPAMD_CONFDIR / "actions.conf").is_file():
        pytest.skip(f"rspamd configuration not found in {RSPAMD_CONFDIR}: apt-get install rspamd")

    local = workdir / "local"
    database = workdir / "db"
    run = workdir / "run"
    for directory in (local, database, run):
        directory.mkdir(parents=True)

    port = free_port()
    dns_port = free_port(socket.SOCK_DGRAM)
    log_path = workdir / "rspamd.log"
    config = workdir / "rspamd.conf"
    config.write_text(f"""\
lua = "$RULESDIR/rspamd.lua";
.include "$CONFDIR/actions.conf"
.include "$CONFDIR/groups.conf"
.include "$CONFDIR/composites.conf"
options {{
  pidfile = "$RUNDIR/rspamd.pid";
  # The C modules that need no network. Lua plugins load only from a "modules" section,
  # and this file has none.
  filters = "chartable,regexp";
  dns {{ nameserver = ["{LOOPBACK}:{dns_port}"]; timeout = 1s; retransmits = 1; }}
  hs_cache_dir = "$DBDIR/";
  cache_file = "$DBDIR/symbols.cache";
  control_socket = "$DBDIR/rspamd.sock mode=0600";
  url_tld = "$SHAREDIR/effective_tld_names.dat";
  task_timeout = 8s;
}}
logging {{ type = "file"; filename = "{log_path}"; level = "info"; }}
worker "normal" {{ bind_socket = "{LOOPBACK}:{port}"; count = 1; }}
""", encoding="ascii")

    # --insecure lets rspamd run its workers as root, the user that runs the tests in CI.
    command = [program, "--no-fork", "--insecure", f"--config={config}",
               f"--var=LOCAL_CONFDIR={local}", f"--var=DBDIR={database}",
               f"--var=RUNDIR={run}", f"--var=LOGDIR={workdir}"]

    def answers_ping() -> bool:
        reply = exchange(port, f"GET /ping HTTP/1.0\r\nHost: {LOOPBACK}\r\n\r\n".encode("ascii"))
        return reply.startswith(b"HTTP/1.") and reply.rstrip().endswith(b"pong")

    with running_service("rspamd", command, workdir, port, log_path, answers_ping,
                         RSPAMD_START_TIMEOUT) as service:
        yield service


@contextmanager
def running_service(name: str, command: list[str], workdir: Path, port: int, log_path: Path,
                    answers_ping: Callable[[], bool], start_timeout: float) -> Iterator[Service]:
    """Start `command`, wait until `answers_ping` returns True, and stop it on exit."""
    started = time.monotonic()
    output = open(workdir / f"{name}.out", "wb")
    # A session of its own, so that stop_process can end the daemon's children with it.
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                               stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    output.close()
    try:
        wait_for_ping(name, process, answers_ping, started + start_timeout, log_path, workdir)
        service = Service(name, LOOPBACK, port, process, workdir, log_path,
                          startup_seconds=time.monotonic() - started)
        log.info("%s started on %s:%d in %.1f s (pid %d, log %s)",
                 name, LOOPBACK, port, service.startup_seconds, process.pid, log_path)
        yield service
    finally:
        stop_process(process)
        log.info("%s stopped (pid %d)", name, process.pid)


def wait_for_ping(name: str, process: subprocess.Popen[bytes], answers_ping: Callable[[], bool],
                  deadline: float, log_path: Path, workdir: Path) -> None:
    while True:
        if exit_status(process) is not None:
            raise ServiceStartError(f"{name} exited with status {exit_status(process)} during "
                                    f"start-up; {log_tail(log_path, workdir / f'{name}.out')}")
        try:
            if answers_ping():
                return
        except OSError:
            pass  # Not listening yet.
        if time.monotonic() > deadline:
            raise ServiceStartError(f"{name} did not answer PING within its start timeout; "
                                    f"{log_tail(log_path, workdir / f'{name}.out')}")
        time.sleep(PROBE_INTERVAL)


def exit_status(process: subprocess.Popen[bytes]) -> int | None:
    """Return the exit status of a process that has ended, without reaping it.

    An unreaped process keeps its pid, and so its process group id, reserved: stop_process
    can then signal the group without reaching an unrelated process that reused the id.
    """
    if process.returncode is not None:
        return process.returncode
    ended = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return None if ended is None else ended.si_status


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` to 127.0.0.1:`port` and return the reply, read until the server
    closes the connection or stops sending."""
    with socket.create_connection((LOOPBACK, port), timeout=PROBE_TIMEOUT) as connection:
        connection.sendall(request)
        reply = bytearray()
        try:
            while chunk := connection.recv(4096):
                reply += chunk
                if reply.endswith(b"\0"):
                    break  # clamd ends its reply with a NUL byte and keeps the connection.
        except TimeoutError:
            pass
        return bytes(reply)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a daemon started by running_service, and the processes it started.

    The daemon gets SIGTERM and STOP_TIMEOUT seconds to end its children. Then its process
    group, whose id is the daemon's pid because running_service started a new session,
    gets SIGKILL for anything left, before the daemon itself is reaped.
    """
    if process.returncode is not None:
        return

    if exit_status(process) is None:
        process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        while exit_status(process) is None and time.monotonic() < deadline:
            time.sleep(PROBE_INTERVAL)
        if exit_status(process) is None:
            log.warning("pid %d did not stop within %.0f s of SIGTERM; sending SIGKILL",
                        process.pid, STOP_TIMEOUT)

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def log_tail(*paths: Path) -> str:
    """Return the last lines of the first of `paths` that has content, for an error message."""
    for path in paths:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            continue
        if lines:
            return f"last lines of {path}: " + " | ".join(lines[-LOG_TAIL_LINES:])
    return f"no output in {', '.join(map(str, paths))}"
