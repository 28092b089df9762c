"""The recording stub API behind every engine: it answers 200, 404 or 500 by path, sends CORS
headers and a Vary of its own (which the policy must replace or keep), can hang (504), and
records the id of every request that reached it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What a careless API sends: the policy's headers must replace these, never sit beside them.
STUB_CORS = (("Access-Control-Allow-Origin", "https://upstream.invalid"),
             ("Access-Control-Allow-Credentials", "true"),
             ("Access-Control-Allow-Methods", "TRACE"),
             ("Access-Control-Expose-Headers", "X-Upstream-Secret"),
             ("Access-Control-Debug", "stub"))
STUB_VARY = "Accept-Encoding"
ID_HEADER = "X-Matrix-Id"


class Stub:
    """A threaded HTTP/1.1 server on 127.0.0.1; `reached` holds the ids that got through."""

    def __init__(self) -> None:
        self.reached: set[str] = set()
        self.release = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __getattr__(self, name: str):
                if name.startswith("do_"):
                    return self._answer
                raise AttributeError(name)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if (ident := self.headers.get(ID_HEADER)) is not None:
                    stub.reached.add(ident)
                if self.path.endswith("/hang"):
                    stub.release.wait(30)   # answers nothing until the test ends: a 504 upstream
                    return
                status = 404 if self.path.endswith("/status/404") else 500 if self.path.endswith("/status/500") else 200
                body = b'{"stub": true}\n'
                self.send_response(status)
                if status != 500:   # a 500 is a crash page, as a framework sends it: nothing of the app's
                    for name, value in STUB_CORS:
                        self.send_header(name, value)
                    self.send_header("Vary", STUB_VARY)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket: every gateway now gets connection refused (502)."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
