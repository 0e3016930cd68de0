"""A webhook receiver for the integration tests (stdlib only).

    python3 hook.py PORT DIR

Every POST is answered, then recorded as one JSON line in DIR/received.jsonl:
{"path", "headers", "body_b64", "status", "received_at"}. The answer is 200 unless a script says otherwise.

    GET  /_received[?prefix=/p]   the records (JSON lines), optionally only paths under a prefix
    POST /_script                 {"path": "/p/x", "responses": [{"status": 500},
                                   {"status": 429, "retry_after": "1"}]}: the next POSTs to that
                                   exact path get these answers, in order, then 200 again
    POST /_reset                  forgets every record and script

Tests run in parallel against one receiver, so each uses paths of its own.
"""
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

port, directory = int(sys.argv[1]), sys.argv[2]
received = os.path.join(directory, "received.jsonl")
lock = threading.Lock()
scripts = {}
open(received, "a").close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.read_body()
        path = self.path
        if path == "/_script":
            script = json.loads(body)
            with lock:
                scripts.setdefault(script["path"], []).extend(script["responses"])
            return self.answer(200)
        if path == "/_reset":
            with lock:
                scripts.clear()
                open(received, "w").close()
            return self.answer(200)
        with lock:
            queue = scripts.get(path) or []
            response = queue.pop(0) if queue else {"status": 200}
            status = int(response["status"])
            with open(received, "a") as f:
                f.write(json.dumps({
                    "path": path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body_b64": base64.b64encode(body).decode(),
                    "status": status,
                    "received_at": time.time(),
                }) + "\n")
        headers = []
        if "retry_after" in response:
            headers.append(("Retry-After", str(response["retry_after"])))
        text = response.get("body", "" if status < 300 else f"scripted status {status}")
        self.answer(status, text.encode(), headers)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/_received":
            return self.answer(404)
        prefix = parse_qs(url.query).get("prefix", [""])[0]
        with lock, open(received) as f:
            lines = [l for l in f if json.loads(l)["path"].startswith(prefix)]
        self.answer(200, "".join(lines).encode(), [("Content-Type", "application/x-ndjson")])

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
