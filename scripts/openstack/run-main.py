#!/usr/bin/python3
"""run-main.py PROG MODULE:FUNC [ARGS...]: runs an OpenStack console entry
point. Debian's python3-* packages ship the modules only, not the
/usr/bin/nova-api (etc.) scripts of the service packages, whose init
scripts and database setup the test cloud must not have."""
import importlib
import sys

prog, target = sys.argv[1], sys.argv[2]
sys.argv = [prog] + sys.argv[3:]
mod, func = target.split(":")
sys.exit(getattr(importlib.import_module(mod), func)())
