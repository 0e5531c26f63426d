#!/usr/bin/python3
"""cloud.py catalog NAME=PORT... | wait TIMEOUT: the Keystone side of the
test cloud, with the admin credentials of the OS_* environment.

catalog: the service project and user "svc" (roles admin and service; the
service role is what service tokens need), the service role on admin too,
and one public endpoint per service in RegionOne: image (glance), volumev3
(cinder), compute (nova), placement, network (neutron).

wait: polls until cinder-volume reports up and nova-compute's host is
mapped into a cell (a hypervisor is listed), or fails after TIMEOUT
seconds saying which did not come. One process, one token: far cheaper
than the openstack CLI in a loop."""
import os
import sys
import time

from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client


def sess():
    e = os.environ
    auth = v3.Password(auth_url=e["OS_AUTH_URL"], username=e["OS_USERNAME"], password=e["OS_PASSWORD"],
                       project_name=e["OS_PROJECT_NAME"], user_domain_name="Default",
                       project_domain_name="Default")
    return session.Session(auth=auth)


def get_or(create, find, name, **kw):
    found = [x for x in find() if x.name == name]
    return found[0] if found else create(name=name, **kw)


def catalog(ports):
    ks = client.Client(session=sess())
    proj = get_or(ks.projects.create, ks.projects.list, "service", domain="default")
    user = get_or(ks.users.create, ks.users.list, "svc", domain="default", password="svc", default_project=proj)
    for rname in ("admin", "service"):
        role = get_or(ks.roles.create, ks.roles.list, rname)
        ks.roles.grant(role, user=user, project=proj)
    admin = [u for u in ks.users.list() if u.name == "admin"][0]
    adminp = [p for p in ks.projects.list() if p.name == "admin"][0]
    ks.roles.grant([r for r in ks.roles.list() if r.name == "service"][0], user=admin, project=adminp)
    svcs = [("glance", "image", "http://127.0.0.1:%s" % ports["glance"]),
            ("cinderv3", "volumev3", "http://127.0.0.1:%s/v3/%%(project_id)s" % ports["cinder"]),
            ("nova", "compute", "http://127.0.0.1:%s/v2.1" % ports["nova"]),
            ("placement", "placement", "http://127.0.0.1:%s" % ports["placement"]),
            ("neutron", "network", "http://127.0.0.1:%s" % ports["neutron"])]
    existing = {s.type for s in ks.services.list()}
    for name, typ, url in svcs:
        if typ in existing:
            continue
        s = ks.services.create(name=name, type=typ)
        ks.endpoints.create(service=s, url=url, interface="public", region="RegionOne")


def wait(timeout):
    s = sess()
    deadline = time.time() + timeout
    want = {"cinder-volume up": False, "nova-compute mapped to a cell": False}
    while True:
        try:
            if not want["cinder-volume up"]:
                r = s.get("/os-services", endpoint_filter={"service_type": "volumev3", "interface": "public"},
                          raise_exc=False)
                if r.ok and any(x["binary"] == "cinder-volume" and x["state"] == "up"
                                for x in r.json()["services"]):
                    want["cinder-volume up"] = True
            if not want["nova-compute mapped to a cell"]:
                r = s.get("/os-hypervisors", endpoint_filter={"service_type": "compute", "interface": "public"},
                          raise_exc=False)
                if r.ok and r.json()["hypervisors"]:
                    want["nova-compute mapped to a cell"] = True
        except Exception as e:  # a service still starting: connection refused
            last = e
        if all(want.values()):
            return
        if time.time() > deadline:
            missing = [k for k, v in want.items() if not v]
            sys.exit("not within %ds: %s" % (timeout, ", ".join(missing)))
        time.sleep(1)


if sys.argv[1] == "catalog":
    catalog(dict(a.split("=", 1) for a in sys.argv[2:]))
elif sys.argv[1] == "wait":
    wait(int(sys.argv[2]))
else:
    sys.exit("usage: cloud.py catalog NAME=PORT... | wait TIMEOUT")
