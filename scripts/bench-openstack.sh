#!/usr/bin/env bash
# scripts/bench-openstack.sh: protecting a plan of Cinder volumes through
# the appliance, beside the same volumes backed up with `cairn backup
# --source rbd:` directly (called by scripts/bench-all.sh, or on its own).
#
# Uses the test cloud of OPENSTACK_ENV, or starts a throwaway Ceph cluster
# and OpenStack (scripts/ceph-cluster.sh, scripts/openstack.sh) and stops
# them afterwards. Makes VOLUMES volumes of 1 GiB with DATA_MIB MiB of
# random data each, protects a plan of all of them with `cairn serve`
# (full, then incremental after CHANGE_MIB MiB of each was rewritten), and
# backs up the same volumes with `cairn backup --source rbd:` into a
# repository of the same kind, one after the other, full and incremental.
# The appliance's wall time is split with its metrics: time in HTTP
# requests to OpenStack (cairn_cloud_request_seconds_total), time between
# polls of status changes (cairn_cloud_sleep_seconds_total), and the rest,
# data movement. A plan's volumes are protected one after the other, so
# the parts add up to the wall time.
#
# Prints one figure per line, "name: value unit (ceiling: value unit)".
#
# Environment:
#   CAIRN_BIN    the cairn binary, built with Ceph support (default bin/cairn)
#   VOLUMES      volumes in the plan (default 10)
#   DATA_MIB     random data written into each volume (default 64)
#   CHANGE_MIB   data rewritten in each before the incremental (default 4)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CAIRN_BIN=${CAIRN_BIN:-$ROOT/bin/cairn}
VOLUMES=${VOLUMES:-10}
DATA_MIB=${DATA_MIB:-64}
CHANGE_MIB=${CHANGE_MIB:-4}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cairn-bench-openstack.XXXXXX")

log() { printf 'bench-openstack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=scripts/bench-serve.sh
source "$ROOT/scripts/bench-serve.sh"

SERVE_PID= ceph_dir= os_dir=
VOL_IDS=()
cleanup() {
	if [[ -n $SERVE_PID ]]; then
		kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
	fi
	if [[ -z $os_dir && ${#VOL_IDS[@]} -gt 0 ]]; then
		# A cloud of the caller's: leave it as found.
		for id in "${VOL_IDS[@]}"; do
			for s in $(openstack volume snapshot list --volume "$id" -f value -c ID 2>/dev/null); do
				openstack volume snapshot delete "$s" >/dev/null 2>&1 || true
			done
		done
		# The direct backups' own RBD snapshots, which Cinder does not know.
		for id in "${VOL_IDS[@]}"; do
			for s in $(rbd snap ls "volumes/volume-$id" --format json 2>/dev/null |
				python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin) if s["name"].startswith("cairn")))'); do
				rbd snap rm "volumes/volume-$id@$s" >/dev/null 2>&1 || true
			done
		done
		sleep 5
		openstack volume delete "${VOL_IDS[@]}" >/dev/null 2>&1 || true
	fi
	[[ -z $os_dir ]] || ./scripts/openstack.sh stop "$os_dir" >&2 || true
	[[ -z $ceph_dir ]] || ./scripts/ceph-cluster.sh stop "$ceph_dir" >&2 || true
	rm -rf "$W"
}
trap cleanup EXIT

[[ -f /usr/include/rados/librados.h ]] || die "needs Ceph's headers (make deps): the Cinder plugin is built with Ceph support only"
go build -tags 'ceph pacific' -o "$CAIRN_BIN" ./cmd/cairn

if [[ -z ${OPENSTACK_ENV-} ]]; then
	ceph_dir=$(mktemp -d /tmp/cairn-bench-ceph.XXXXXX)
	log "starting a throwaway Ceph cluster in $ceph_dir"
	CEPH_CONF=$(CEPH_MON_PORT=auto ./scripts/ceph-cluster.sh start "$ceph_dir")
	export CEPH_CONF
	os_dir=$(mktemp -d /tmp/cairn-bench-openstack-cloud.XXXXXX)
	log "starting a throwaway OpenStack in $os_dir"
	OPENSTACK_ENV=$(./scripts/openstack.sh start "$os_dir")
fi
# shellcheck disable=SC1090
source "$OPENSTACK_ENV"
project=$(openstack token issue -f value -c project_id)
# Each protected volume keeps one cairn snapshot and has a second while it
# is protected again; Cinder's default quotas (10 volumes, 10 snapshots a
# project) are below a plan of 10 volumes (docs/openstack.md, Quotas).
for q in volumes snapshots; do
	have=$(openstack quota show -f value -c "$q" "$project")
	if ((have >= 0 && have < 2 * VOLUMES + 2)); then
		log "raising the $q quota of project $project from $have to $((2 * VOLUMES + 2))"
		openstack quota set "--$q" $((2 * VOLUMES + 2)) "$project"
	fi
done

log "making $VOLUMES volumes of 1 GiB with $DATA_MIB MiB of random data each"
for i in $(seq "$VOLUMES"); do
	VOL_IDS+=("$(openstack volume create --size 1 -f value -c id "bench-$$-$i")")
done
for id in "${VOL_IDS[@]}"; do
	for _ in $(seq 300); do
		st=$(openstack volume show "$id" -f value -c status)
		[[ $st == available ]] && break
		[[ $st == error ]] && die "volume $id went to status error"
		sleep 1
	done
	[[ $st == available ]] || die "volume $id still $st after 5 minutes"
done
# write_random ID OFFSET_MIB MIB SEED: random data into the volume's image.
write_random() {
	/usr/bin/python3 - "$CEPH_CONF" "volume-$1" "$2" "$3" "$4" <<'EOF'
import random, sys
import rados, rbd
conf, name, off, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
with rados.Rados(conffile=conf) as c, c.open_ioctx("volumes") as io, rbd.Image(io, name) as img:
    for i in range(n):
        img.write(rng.randbytes(1 << 20), (off + i) << 20)
EOF
}
seed=0
for id in "${VOL_IDS[@]}"; do
	seed=$((seed + 1))
	write_random "$id" 0 "$DATA_MIB" "$seed"
done

log "starting cairn serve"
printf '%s\n' "$OS_PASSWORD" >"$W/cloud-password"
python3 - "$W/serve.json" <<EOF
import json, os, sys
json.dump({"ceph_conf": os.environ["CEPH_CONF"], "workers": 1, "cloud": {
    "auth_url": os.environ["OS_AUTH_URL"], "username": os.environ["OS_USERNAME"],
    "password_file": "$W/cloud-password", "user_domain_name": os.environ.get("OS_USER_DOMAIN_NAME", "Default"),
    "region": os.environ.get("OS_REGION_NAME", "")}}, open(sys.argv[1], "w"))
EOF
start_serve "$W/data" "$W/serve.json"
API=$URL/v1/$project

# protect: one checkpoint of the plan; prints "wall request sleep read_bytes".
protect() {
	python3 - "$API" "$URL" "$plan" "$provider" <<'EOF'
import json, sys, time, urllib.request
api, url, plan, provider = sys.argv[1:5]
def call(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "X-Auth-Token": "bench"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()
def metrics():
    m = {}
    for line in call("GET", url + "/metrics").decode().splitlines():
        if line.startswith("cairn_cloud_"):
            k, v = line.split()
            m[k] = float(v)
    return m
before = metrics()
start = time.monotonic()
cp = json.loads(call("POST", api + "/providers/%s/checkpoints" % provider, {"checkpoint": {"plan_id": plan}}))["checkpoint"]["id"]
while True:
    c = json.loads(call("GET", api + "/providers/%s/checkpoints/%s" % (provider, cp)))["checkpoint"]
    if c["status"] != "protecting":
        break
    time.sleep(0.05)
wall = time.monotonic() - start
if c["status"] != "available":
    sys.exit("checkpoint %s: %s" % (cp, json.dumps(c)))
after = metrics()
d = lambda k: after.get(k, 0) - before.get(k, 0)
read = sum(r.get("read_bytes", 0) for r in c["resources"])
print("%.3f %.3f %.3f %d" % (wall, d("cairn_cloud_request_seconds_total"), d("cairn_cloud_sleep_seconds_total"), read))
EOF
}
provider=$(curl -fsS -H 'X-Auth-Token: bench' "$API/providers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["providers"][0]["id"])')
plan=$(python3 - "$API" "$provider" "${VOL_IDS[@]}" <<'EOF'
import json, sys, urllib.request
api, provider, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
body = {"plan": {"name": "bench", "provider_id": provider, "parameters": {},
                 "resources": [{"id": i, "type": "OS::Cinder::Volume", "name": "bench-%d" % n} for n, i in enumerate(ids)]}}
req = urllib.request.Request(api + "/plans", method="POST", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json", "X-Auth-Token": "bench"})
print(json.load(urllib.request.urlopen(req))["plan"]["id"])
EOF
)

log "appliance: full protection of the plan"
read -r f_wall f_req f_sleep f_read < <(protect)
[[ -n ${f_read-} ]] || die "the full protection failed: $(tail -5 "$W/serve.log")"

log "direct: cairn backup --source rbd: of each volume, full"
export CAIRN_REPO=$W/direct-repo
"$CAIRN_BIN" repo init -q >/dev/null
direct() {
	local start end
	start=$(date +%s.%N)
	for id in "${VOL_IDS[@]}"; do
		"$CAIRN_BIN" backup -q --source "rbd:volumes/volume-$id" >/dev/null
	done
	end=$(date +%s.%N)
	python3 -c "print('%.3f' % ($end - $start))"
}
d_full=$(direct)

log "rewriting $CHANGE_MIB MiB of each volume"
for id in "${VOL_IDS[@]}"; do
	seed=$((seed + 1))
	write_random "$id" 512 "$CHANGE_MIB" "$seed"
done
log "appliance: incremental protection of the plan"
read -r i_wall i_req i_sleep i_read < <(protect)
[[ -n ${i_read-} ]] || die "the incremental protection failed: $(tail -5 "$W/serve.log")"
log "direct: incremental"
d_incr=$(direct)

fig() { printf '%s: %s %s (ceiling: %s %s)\n' "$1" "$2" "$3" "$4" "$3"; }
split() { python3 -c "w,r,s=$1,$2,$3; print('%.2f s = %.2f s OpenStack requests + %.2f s waiting for status changes + %.2f s data movement' % (w, r, s, w-r-s))"; }
mib() { python3 -c "print('%.1f' % ($1 / 1048576))"; }
fig "protect plan of $VOLUMES Cinder volumes (${DATA_MIB} MiB each), full: wall" "$f_wall" s "$d_full"
echo "  split: $(split "$f_wall" "$f_req" "$f_sleep"); read $(mib "$f_read") MiB"
fig "protect plan of $VOLUMES Cinder volumes, incremental after ${CHANGE_MIB} MiB each: wall" "$i_wall" s "$d_incr"
echo "  split: $(split "$i_wall" "$i_req" "$i_sleep"); read $(mib "$i_read") MiB"
echo "  (ceiling: cairn backup --source rbd: of the same volumes, one after the other, into a local repository)"
