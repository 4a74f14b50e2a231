"""Serves the downstream service on 127.0.0.1 at a port the system picks, and prints
`listening on PORT` once it accepts connections. Run from tests/python: `python -m downstream.serve`.

A threaded stdlib WSGI server (no runserver autoreloader or port race). The process ends when its
standard input closes, so a test that dies without killing it leaves nothing running."""

import os
import socketserver
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Handler(WSGIRequestHandler):
    def address_string(self):
        # No reverse DNS lookups in the request log.
        return self.client_address[0]


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    os.environ["DJANGO_SETTINGS_MODULE"] = "downstream.settings"
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    server = make_server("127.0.0.1", 0, application, server_class=Server, handler_class=Handler)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"listening on {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
