"""Start and stop every embedded host of a sky: in this process, or as a background process.

`serve_sky` runs all hosts on one event loop in a background thread; `running_sky` starts
`python -m skyshard.embedded_hosts --home <home>` as a child process and waits until every
port accepts connections. Stopping either closes every connection and then stops every shard
process found under the hosts' roots (by the runtime's pid files), so nothing keeps running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from skyshard.config.errors import ConfigError
from skyshard.config.sky import Sky, load_sky
from skyshard.embedded_hosts.server import Activity, HostServerError, HostSpec, listen
from skyshard.runtime import host_helper
from skyshard.sim.hosts import AUTHORIZED_KEYS, host_key_path

log = logging.getLogger(__name__)

READY = "embedded hosts ready"
LOG_FILE = "embedded_hosts.log"


def host_specs(sky: Sky, home: Path) -> list[HostSpec]:
    """Every host of `sky`, served with the key files under `<home>/keys`."""
    specs = []
    for host_id, (_, host) in sky.hosts.items():
        key = host_key_path(home, host_id)
        if not key.exists():
            raise HostServerError(
                f"host {host_id}: no host key at {key}; generate the sky with write_sky"
            )
        specs.append(
            HostSpec(
                host_id=host_id,
                address=host.address,
                port=host.port,
                user=host.user,
                root=Path(host.root),
                host_key=key,
                authorized_keys=home / AUTHORIZED_KEYS,
            )
        )
    return specs


def stop_shards(roots: list[Path]) -> list[str]:
    """Stop every shard process the runtime started under `roots`; returns `host root:shard`."""
    stopped = []
    for root in roots:
        for pid_file in sorted((root / "shards").glob("*/pid")):
            shard = host_helper.Shard(root, pid_file.parent.name)
            if shard.pid() is None:
                continue
            try:
                host_helper.stop(shard, kill=False)
                stopped.append(f"{root}:{shard.id}")
            except host_helper.HelperError as error:
                log.error("could not stop shard %s under %s: %s", shard.id, root, error)
    return stopped


@dataclass
class SkyServers:
    """All embedded hosts of a sky, served on one event loop in a background thread."""

    specs: list[HostSpec]
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _acceptors: list[asyncssh.SSHAcceptor] = field(default_factory=list)
    _activity: Activity = field(default_factory=Activity)

    def stop(self) -> list[str]:
        """Close every listener and connection, then stop the shards; returns those stopped."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
        return stop_shards([spec.root for spec in self.specs])

    async def _close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        self._activity.close()
        for acceptor in self._acceptors:
            await acceptor.wait_closed()
        for connection in list(self._activity.connections):
            await connection.wait_closed()
        await self._activity.wait_commands(timeout=10)


def serve_sky(sky: Sky, home: Path) -> SkyServers:
    """Serve every host of `sky` until `stop()`; raises HostServerError if any cannot start."""
    specs = host_specs(sky, home)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="embedded-hosts", daemon=True)
    servers = SkyServers(specs, loop, thread)
    thread.start()

    async def start_all() -> None:
        for spec in specs:
            servers._acceptors.append(await listen(spec, servers._activity))

    try:
        asyncio.run_coroutine_threadsafe(start_all(), loop).result()
    except BaseException:
        servers.stop()
        raise
    return servers


@dataclass
class RunningSky:
    """The background process serving a sky's hosts."""

    process: subprocess.Popen
    specs: list[HostSpec]
    log_path: Path

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the process stops its shards), SIGKILL if it hangs; then sweep the shards."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        stop_shards([spec.root for spec in self.specs])

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def running_sky(home: Path, *, timeout: float = 60.0) -> Iterator[RunningSky]:
    """Serve the sky in `home` from a background process while the block runs."""
    home = home.absolute()
    specs = host_specs(load_sky(home), home)
    log_path = home / LOG_FILE
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "skyshard.embedded_hosts", "--home", str(home)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    running = RunningSky(process, specs, log_path)
    start = log_path.stat().st_size
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise HostServerError(
                    f"embedded hosts of {home} exited with {process.returncode}:\n"
                    + running.log_tail()
                )
            ready = READY.encode() in log_path.read_bytes()[start:]
            if ready and all(_accepts(s.address, s.port) for s in specs):
                break
            if time.monotonic() > deadline:
                raise HostServerError(
                    f"embedded hosts of {home} not ready after {timeout}s:\n" + running.log_tail()
                )
            time.sleep(0.05)
        yield running
    finally:
        running.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skyshard.embedded_hosts",
        description="Serve every host of a sky as an embedded SSH server until SIGTERM/SIGINT.",
    )
    parser.add_argument("--home", type=Path, required=True, help="sky folder (providers.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    home = args.home.absolute()
    try:
        servers = serve_sky(load_sky(home), home)
    except (ConfigError, HostServerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    for spec in servers.specs:
        log.info("host %s on %s:%d, root %s", spec.host_id, spec.address, spec.port, spec.root)
    print(f"{READY}: {len(servers.specs)} hosts (pid {os.getpid()})", flush=True)
    stopping.wait()
    stopped = servers.stop()
    print(f"embedded hosts stopped; shards stopped: {len(stopped)}", flush=True)
    return 0
