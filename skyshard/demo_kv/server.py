"""A small stateful key-value HTTP service; stdlib only so it also runs as a copied script.

`PUT /kv/<key>` stores the request body, `GET /kv/<key>` returns it, `GET /health` answers
`{"status": "ok", "keys": N}` and `GET /checksum` the SHA-256 of all pairs in key order (so a
test can compare the data before and after a migration).

State directory layout: `data.log` is an append-only log of JSON lines `{"k": key, "v": value}`
for small values, or `{"k": key, "blob": name}` for values of `BLOB_THRESHOLD` bytes or more,
which go to `blobs/<name>` first; every write is fsynced before it is acknowledged, so killing
the process (even with SIGKILL) never loses an acknowledged write. Start-up replays only the log
(values in blobs are read on demand), and ignores a torn last line from a crash mid-append.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

LOG_NAME = "data.log"
BLOB_DIR = "blobs"
BLOB_THRESHOLD = 64 * 1024
MAX_VALUE = 64 << 20


class Store:
    """The key-value data of one state directory: an in-memory index over the log and blobs."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.state.mkdir(parents=True, exist_ok=True)
        (state / BLOB_DIR).mkdir(exist_ok=True)
        self._index: dict[str, tuple[str, str]] = {}  # key -> ("v", base64) | ("blob", name)
        self._lock = threading.Lock()
        self._replay()
        self._log = open(state / LOG_NAME, "ab")  # noqa: SIM115 - held for the process lifetime

    def _replay(self) -> None:
        path = self.state / LOG_NAME
        if not path.exists():
            return
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            # A torn final record from a crash mid-append: it was never acknowledged.
            with path.open("r+b") as handle:
                handle.truncate(len(complete))
        for line in complete.splitlines():
            record = json.loads(line)
            if "blob" in record:
                self._index[record["k"]] = ("blob", record["blob"])
            else:
                self._index[record["k"]] = ("v", record["v"])

    def put(self, key: str, value: bytes) -> None:
        if len(value) >= BLOB_THRESHOLD:
            name = uuid.uuid4().hex
            _write_synced(self.state / BLOB_DIR / name, value)
            entry = ("blob", name)
            record = {"k": key, "blob": name}
        else:
            entry = ("v", base64.b64encode(value).decode())
            record = {"k": key, "v": entry[1]}
        line = json.dumps(record, sort_keys=True).encode() + b"\n"
        with self._lock:
            self._log.write(line)
            self._log.flush()
            os.fsync(self._log.fileno())
            self._index[key] = entry

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._index.get(key)
        if entry is None:
            return None
        kind, payload = entry
        if kind == "blob":
            return (self.state / BLOB_DIR / payload).read_bytes()
        return base64.b64decode(payload)

    def count(self) -> int:
        with self._lock:
            return len(self._index)

    def checksum(self) -> str:
        with self._lock:
            keys = sorted(self._index)
        digest = hashlib.sha256()
        for key in keys:
            value = self.get(key) or b""
            digest.update(f"{key}\0{len(value)}\0".encode())
            digest.update(value)
        return digest.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per request would flood the shard log

        def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _key(self) -> str | None:
            if not self.path.startswith("/kv/") or len(self.path) == 4:
                return None
            return unquote(self.path[4:])

        def do_GET(self) -> None:
            if self.path == "/health":
                body = {"status": "ok", "keys": store.count(), "pid": os.getpid()}
                self._reply(200, json.dumps(body).encode())
            elif self.path == "/checksum":
                body = {"sha256": store.checksum(), "keys": store.count()}
                self._reply(200, json.dumps(body).encode())
            elif (key := self._key()) is not None:
                value = store.get(key)
                if value is None:
                    self._reply(404, json.dumps({"error": f"no key {key!r}"}).encode())
                else:
                    self._reply(200, value, "application/octet-stream")
            else:
                self._reply(404, b'{"error": "unknown path"}')

        def do_PUT(self) -> None:
            key = self._key()
            length = int(self.headers.get("Content-Length", "0"))
            if key is None or not 0 <= length <= MAX_VALUE:
                self._reply(400, b'{"error": "PUT /kv/<key> with a body up to 64 MiB"}')
                return
            store.put(key, self.rfile.read(length))
            self._reply(204, b"")

    return Handler


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="demo_kv", description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, type=Path, help="state directory")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args(argv)
    store = Store(args.state)
    server = ThreadingHTTPServer((args.address, args.port), make_handler(store))
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
