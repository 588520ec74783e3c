#!/usr/bin/env python3
"""A webhook receiver over HTTPS (Python's own TLS), for the https webhook test.

    https_receiver.py CERT KEY OUT

Prints `port N` once listening on 127.0.0.1; each POST is answered 200 and appended to OUT
as one JSON line: {"path", "headers" (lower-case names), "body"}.
"""

import http.server
import json
import ssl
import sys

CERT, KEY, OUT = sys.argv[1:4]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n).decode("utf-8")
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }) + "\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
