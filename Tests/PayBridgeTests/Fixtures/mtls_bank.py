"""A minimal Banking Circle stand-in over HTTPS that requires a client certificate.

Usage: python3 mtls_bank.py CERT KEY CA
Serves the authorize call (Basic sandbox:sandbox), a one-payment list and a webhook
receiver (POST, prints "hook <client CN>") on 127.0.0.1; prints "port N" once listening.
"""
import base64
import http.server
import json
import signal
import ssl
import sys

# The test runner may start us with signals blocked; let SIGTERM/SIGINT stop us.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

cert, key, ca = sys.argv[1:4]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        peer = self.connection.getpeercert() or {}
        cn = next((value for rdn in peer.get("subject", ()) for name, value in rdn if name == "commonName"), "")
        if self.path.startswith("/api/v1/authorizations/authorize"):
            expected = "Basic " + base64.b64encode(b"sandbox:sandbox").decode()
            if self.headers.get("Authorization") != expected:
                return self.reply(401, b"[]", cn)
            return self.reply(200, json.dumps({"access_token": "tls-token", "expires_in": 300}).encode(), cn)
        if self.headers.get("Authorization") != "Bearer tls-token":
            return self.reply(401, b"", cn)
        payment = {"paymentId": "5f0e1c2d-0000-4000-8000-000000000001", "status": "Processed", "amount": 13.00}
        return self.reply(200, json.dumps({"result": [payment], "pageInfo": {"currentPage": 1, "pageSize": 1000, "rowCount": 1}}).encode(), cn)

    def do_POST(self):
        peer = self.connection.getpeercert() or {}
        cn = next((value for rdn in peer.get("subject", ()) for name, value in rdn if name == "commonName"), "")
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        print(f"hook {cn}", flush=True)
        return self.reply(204, b"", cn)

    def reply(self, status, body, cn):
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Client-CN: {cn}\r\n\r\n"
        self.wfile.write(head.encode() + body)


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.verify_mode = ssl.CERT_REQUIRED
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
