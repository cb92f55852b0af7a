#!/usr/bin/python3
"""An HTTP endpoint for the alert output tests: records every request and answers as told.

    http_sink.py PORT_FILE LOG_FILE CONTROL_FILE

Listens on 127.0.0.1 on a free port (written to PORT_FILE once listening). Each request
answered 2xx is appended to LOG_FILE as one JSON line {"method", "path", "headers", "body"}
before the answer goes out (so the log holds what was accepted). CONTROL_FILE, read at every request, says how to
answer: {"status": 200, "retry_after": "1", "hang": false, "fail_next": 0}: `fail_next`
requests get `status` (with Retry-After if given), the rest 200; with "hang" a request is
read and never answered.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file, control_file = sys.argv[1:4]
lock = threading.Lock()


def control():
    try:
        with open(control_file) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            c = control()
            if c.get("hang"):
                hang = True
            else:
                hang = False
                failing = int(c.get("fail_next", 0)) > 0
                if failing:
                    c["fail_next"] = int(c["fail_next"]) - 1
                    with open(control_file, "w") as f:
                        json.dump(c, f)
        if hang:
            time.sleep(3600)
            return
        status = int(c.get("status", 500)) if failing else 200
        if status < 300:  # logged before the answer: once the client knows, the log does
            with lock, open(log_file, "a") as f:
                f.write(json.dumps({"method": "POST", "path": self.path,
                                    "headers": {k: v for k, v in self.headers.items()},
                                    "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(status)
        if failing and c.get("retry_after") is not None:
            self.send_header("Retry-After", str(c["retry_after"]))
        payload = b'{"text":"Success","code":0}' if status == 200 else b'{"error":"told to fail"}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
