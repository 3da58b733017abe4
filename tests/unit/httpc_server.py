#!/usr/bin/python3
"""HTTP/1.1 test server for tests/unit/test_httpc.c (stdlib only).

Usage: httpc_server.py [--cert C --key K [--tls12-only]]
Listens on a free port (dual-stack [::] when IPv6 works, else 127.0.0.1) and prints
"<port> <family>" on stdout, then serves until killed. The path selects the behaviour:

  /echo        200, body = request body, Content-Type application/teep+cbor
  /empty       204 No Content
  /chunked     200, the request body (or ?n= bytes) sent as chunked transfer coding
  /close       200 with "Connection: close", then the server closes
  /drop        200 keep-alive style (no Connection header), then the server closes anyway
  /big?n=N     200 with N bytes of body and a Content-Length
  /hdrs?n=N    200 with an N-byte X-Big header
  /slow?ms=N   waits N ms, then like /echo
  /eof         200 without Content-Length: the body ends when the server closes
  /garbage     a malformed status line, then close
  /hangup      closes the connection without any response
  /redirect    302 with a Location header
  /continue    "100 Continue" interim response, then 200
Every response carries X-Conn (client port, identifies the connection), X-Req-Num (requests
seen on this connection) and X-Got-* headers echoing what the client sent.
"""
import argparse
import socket
import socketserver
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TEEP = "application/teep+cbor"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.dispatch()

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()

    def common_headers(self, body_len):
        self.nreq = getattr(self, "nreq", 0) + 1
        self.send_header("X-Conn", str(self.client_address[1]))
        self.send_header("X-Req-Num", str(self.nreq))
        self.send_header("X-Got-Len", str(body_len))
        self.send_header("X-Got-Method", self.command)
        self.send_header("X-Got-Accept", self.headers.get("Accept", "-"))
        self.send_header("X-Got-Content-Type", self.headers.get("Content-Type", "-"))
        self.send_header("X-Got-Connection", self.headers.get("Connection", "-"))

    def reply(self, status, body=b"", extra=()):
        self.send_response(status)
        self.common_headers(len(self.req_body))
        for k, v in extra:
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def chunked(self, body):
        self.send_response(200)
        self.common_headers(len(self.req_body))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        step = max(1, len(body) // 3)
        for i in range(0, len(body), step):
            piece = body[i:i + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def dispatch(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        n = int(self.headers.get("Content-Length", "0"))
        self.req_body = self.rfile.read(n) if n > 0 else b""
        num = int(q.get("n", ["0"])[0])
        ms = int(q.get("ms", ["0"])[0])
        p = url.path
        teep = (("Content-Type", TEEP),)
        if p == "/echo":
            self.reply(200, self.req_body, teep)
        elif p == "/empty":
            self.reply(204)
        elif p == "/chunked":
            self.chunked(self.req_body if num == 0 else b"c" * num)
        elif p == "/close":
            self.reply(200, b"bye", (("Connection", "close"),))
        elif p == "/drop":
            self.reply(200, b"dropped")
            self.close_connection = True
        elif p == "/big":
            self.reply(200, b"x" * num)
        elif p == "/hdrs":
            self.reply(200, b"h", (("X-Big", "h" * num),))
        elif p == "/slow":
            time.sleep(ms / 1000.0)
            self.reply(200, self.req_body, teep)
        elif p == "/eof":
            self.send_response(200)
            self.common_headers(len(self.req_body))
            self.send_header("Connection", "close")
            self.end_headers()
            self.raw(b"until-eof-body")
        elif p == "/garbage":
            self.raw(b"HTTP/1.1 2x0 Bad\r\nContent-Length: 3\r\n\r\nabc")
        elif p == "/hangup":
            self.close_connection = True
        elif p == "/redirect":
            self.reply(302, b"", (("Location", "/echo"),))
        elif p == "/continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
            self.reply(200, b"after-continue")
        else:
            self.reply(404, b"no such path")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # Skip HTTPServer.server_bind: its getfqdn() may wait on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "localhost"
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address):
        pass  # clients that time out or refuse our certificate are expected


class Server6(Server):
    address_family = socket.AF_INET6


def make_server():
    try:
        return Server6(("::", 0), Handler), "6"
    except OSError:
        return Server(("127.0.0.1", 0), Handler), "4"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls12-only", action="store_true")
    args = ap.parse_args()
    srv, fam = make_server()
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls12_only:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        # Handshake lazily in the handler thread, so one bad client cannot block accept().
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    print(srv.server_address[1], fam, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
