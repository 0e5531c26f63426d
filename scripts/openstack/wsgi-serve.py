#!/usr/bin/python3
"""wsgi-serve.py MODULE:FACTORY PORT: serves FACTORY()'s WSGI application on
127.0.0.1:PORT with Werkzeug's threaded server (Placement has no eventlet
server of its own, and the test cloud does without uwsgi)."""
import importlib
import sys

from werkzeug.serving import WSGIRequestHandler, make_server

target, port = sys.argv[1], int(sys.argv[2])
sys.argv[1:] = []
mod, func = target.split(":")
app = getattr(importlib.import_module(mod), func)()


class Handler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        self.log("info", '"%s" %s %s', self.requestline, code, size)


make_server("127.0.0.1", port, app, threaded=True, request_handler=Handler).serve_forever()
