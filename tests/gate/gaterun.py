"""Run the gate inside the test process, on its own event loop in a thread.

Tests talk to it with smtplib from the main thread, as a real client would. The gate's own
command is tested separately through the installed `bouncewise gate`.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path


from bouncewise.gate.config import GateConfig, parse_config
from bouncewise.gate.events import DecisionLog
from bouncewise.gate.server import start_server
from sink import free_port


BOUNCEWISE_COMMAND = Path(sys.executable).with_name("bouncewise")

# Seconds to wait for a started gate to accept connections.
START_TIMEOUT = 20.0


class GateThread:
    """The gate on 127.0.0.1:`port`, relaying to `next_hop`, until `stop()`."""

    def __init__(self, next_hop: tuple[str, int], config: GateConfig | None = None,
                 decisions_file: str = "", **settings) -> None:
        config = config or parse_config({})
        if settings:
            config = replace(config, settings=replace(config.settings, **settings))
        self.config = config
        self.next_hop = next_hop
        self.log = DecisionLog(decisions_file)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.handler = None
        self._server = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> GateThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_server(self.config, ("127.0.0.1", self.port), self.next_hop, self.log),
            self.loop)
        self._server, self.handler = future.result(timeout=10)
        return self

    def __exit__(self, *exc_info) -> None:
        async def close() -> None:
            self._server.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.log.close()

    def connections(self) -> int:
        return self.handler.connections


class GateProcess:
    """`bouncewise gate` run as a user runs it: the installed command, with a config file."""

    def __init__(self, next_hop_port: int, config_text: str, directory: Path,
                 extra_arguments: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.config_path = directory / "gate.toml"
        self.config_path.write_text(config_text)
        self.log_path = directory / "gate.log"
        self.arguments = [str(BOUNCEWISE_COMMAND), "gate", "--listen", f"127.0.0.1:{self.port}",
                          "--next-hop", f"127.0.0.1:{next_hop_port}",
                          "--config", str(self.config_path), *extra_arguments]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> GateProcess:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.arguments, stderr=self._log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"bouncewise gate exited with {self.process.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc_info) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=60)
        self._log.close()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()
