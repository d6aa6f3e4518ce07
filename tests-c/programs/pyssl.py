#!/usr/bin/env python3
"""Python `ssl` server and client for tests-c/programs.sh.

  pyssl.py server PORT CERT KEY TLS(1.2|1.3) TICKETS(stateless|stateful) CONNS
      Listens on 127.0.0.1:PORT, serves CONNS connections (one line in, one
      line out, including whether the session was reused), then prints its
      SSLContext.session_stats() and exits. "stateful" sets OP_NO_TICKET:
      TLS 1.2 falls back to session ids, TLS 1.3 issues stateful tickets;
      either way the server looks sessions up in its session cache.
  pyssl.py client PORT TLS RECONNECTS
      Connects once, keeps sock.session, reconnects RECONNECTS times with
      session=..., prints one line per connection with session_reused.

Loopback only; every socket operation has a timeout.
"""
import socket
import ssl
import sys

TIMEOUT = 10.0


def version(v):
    return {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[v]


def server(port, cert, key, tls, tickets, conns):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = version(tls)
    ctx.load_cert_chain(cert, key)
    if tickets == "stateful":
        ctx.options |= ssl.OP_NO_TICKET
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(8)
    lsock.settimeout(TIMEOUT)
    for i in range(conns):
        raw, _ = lsock.accept()
        raw.settimeout(TIMEOUT)
        with ctx.wrap_socket(raw, server_side=True) as s:
            line = s.recv(100)
            s.sendall(b"conn %d reused=%s version=%s got=%r\n"
                      % (i, str(s.session_reused).encode(),
                         s.version().encode(), line.strip()))
            reused = s.session_reused
            try:
                s.unwrap()
            except (ssl.SSLError, OSError):
                pass
        print("server: conn %d session_reused=%s" % (i, reused), flush=True)
    lsock.close()
    stats = ctx.session_stats()
    print("server stats: " + " ".join("%s=%d" % kv for kv in sorted(stats.items())),
          flush=True)


def client(port, tls, reconnects):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version(tls)
    session = None
    for i in range(reconnects + 1):
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"hello %d\n" % i)
            # Reading the reply also processes TLS 1.3 NewSessionTicket
            # messages, which arrive after the handshake.
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(200)
                if not chunk:
                    break
                reply += chunk
            reused = s.session_reused
            session = s.session
            try:
                s.unwrap()
            except (ssl.SSLError, OSError):
                pass
        print("client: conn %d session_reused=%s offered=%s server said: %s"
              % (i, reused, i > 0, reply.decode().strip()), flush=True)


def main(argv):
    if argv[1] == "server":
        server(int(argv[2]), argv[3], argv[4], argv[5], argv[6], int(argv[7]))
    elif argv[1] == "client":
        client(int(argv[2]), argv[3], int(argv[4]))
    else:
        sys.exit("usage: see the module docstring")


if __name__ == "__main__":
    main(sys.argv)
