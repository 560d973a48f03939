"""Time the gate: messages through the gate to a sink, and the same messages straight to the sink.

    python bench/gate.py [--messages 3000] [--clients 4] [--size 4000]

Starts an SMTP sink and `bouncewise gate` (built-in scanner) as separate processes on loopback.
Sends the messages over `--clients` connections at once, first straight to the sink and then
through the gate. Prints messages per second of both, and the time the gate adds to each
message: median and 99th percentile of (time through the gate) minus (median time direct).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Seconds to wait for a started server to accept connections.
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: server on port {port} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: no server on port {port} after {START_TIMEOUT:g} s")


def serve_sink(port: int) -> None:
    """Run an SMTP sink that accepts every message and discards it (the --serve-sink mode)."""
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok"

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


def message(number: int, size: int) -> bytes:
    head = (f"From: bench@sender.test\r\nTo: sink@dest.test\r\nSubject: message {number}\r\n"
            f"Message-ID: <{number}@sender.test>\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    return head + line * max(1, size // len(line))


def send_all(port: int, count: int, clients: int, size: int) -> tuple[list[float], float]:
    """Send `count` messages over `clients` connections; return per-message seconds and the total."""
    timings: list[float] = []
    lock = threading.Lock()
    numbers = iter(range(count))

    def client() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as connection:
            connection.ehlo("bench.test")
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                data = message(number, size)
                started = time.perf_counter()
                connection.sendmail("bench@sender.test", ["sink@dest.test"], data)
                elapsed = time.perf_counter() - started
                with lock:
                    timings.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4, help="connections at once")
    parser.add_argument("--size", type=int, default=4000, help="bytes of each message")
    parser.add_argument("--serve-sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_sink:
        serve_sink(options.serve_sink)
        return

    command = shutil.which("bouncewise", path=str(Path(sys.executable).parent)) or "bouncewise"
    sink_port, gate_port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(sink_port)])
    gate = subprocess.Popen([command, "gate", "--listen", f"127.0.0.1:{gate_port}",
                             "--next-hop", f"127.0.0.1:{sink_port}"],
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(sink_port, sink)
        wait_for_port(gate_port, gate)
        # A short warm-up, so that neither run pays for imports and first connections.
        send_all(sink_port, 50, options.clients, options.size)
        send_all(gate_port, 50, options.clients, options.size)

        direct, direct_total = send_all(sink_port, options.messages, options.clients,
                                        options.size)
        gated, gated_total = send_all(gate_port, options.messages, options.clients,
                                      options.size)
    finally:
        for process in (gate, sink):
            process.terminate()
            process.wait(timeout=40)

    base = statistics.median(direct)
    added = [timing - base for timing in gated]
    print(f"{options.messages} messages of {options.size} bytes over {options.clients} "
          f"connections, {os.cpu_count()} CPUs")
    print(f"straight to the sink: {options.messages / direct_total:8.0f} messages/s, "
          f"median {base * 1000:.2f} ms")
    print(f"through the gate:     {options.messages / gated_total:8.0f} messages/s, "
          f"median {statistics.median(gated) * 1000:.2f} ms")
    print(f"time the gate adds:   median {statistics.median(added) * 1000:.2f} ms, "
          f"99th percentile {percentile(added, 0.99) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
