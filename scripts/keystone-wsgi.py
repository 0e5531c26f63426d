#!/usr/bin/python3
"""Serves Keystone's WSGI application for scripts/keystone.sh (tests only).

    keystone-wsgi.py --config-dir DIR [--host 127.0.0.1] [--port 0] --port-file FILE

Binds the listening socket first (port 0: the kernel picks a free one) and
writes the bound port to FILE, so the caller learns the port without a race;
then loads Keystone (keystone.server.wsgi.initialize_public_application, which
reads DIR/keystone.conf through OS_KEYSTONE_CONFIG_DIR) and serves it with
Werkzeug's threaded WSGI server (python3-werkzeug, a dependency of Flask and
so of python3-keystone): one thread per connection, HTTP/1.1 keep-alive.
Requests that arrive while Keystone is still loading wait for it.

Run it with Debian's /usr/bin/python3: Keystone lives in its dist-packages.
"""

import argparse
import os
import sys
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class RequestHandler(WSGIRequestHandler):
    """Logs one plain line per request (Werkzeug's own adds ANSI colours)."""

    def log_request(self, code="-", size="-"):
        self.log("info", '"%s" %s %s', self.requestline, code, size)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    # Keystone parses sys.argv with oslo.config; give it nothing of ours.
    sys.argv[1:] = []
    os.environ["OS_KEYSTONE_CONFIG_DIR"] = os.path.abspath(args.config_dir)

    loaded = threading.Event()
    state = {}

    def app(environ, start_response):
        loaded.wait()
        return state["app"](environ, start_response)

    server = make_server(args.host, args.port, app, threaded=True,
                         request_handler=RequestHandler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_port)
    os.rename(tmp, args.port_file)
    print("keystone-wsgi: listening on %s:%d, loading keystone"
          % (args.host, server.server_port), file=sys.stderr, flush=True)

    from keystone.server.wsgi import initialize_public_application
    state["app"] = initialize_public_application()
    loaded.set()
    print("keystone-wsgi: keystone loaded, serving", file=sys.stderr,
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
