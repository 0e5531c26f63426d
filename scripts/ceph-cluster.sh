#!/usr/bin/env bash
# A throwaway single-node Ceph cluster on loopback, for tests, CI and benchmarks.
#
#   scripts/ceph-cluster.sh start DIR   bring a cluster up in DIR (idempotent);
#                                       prints DIR/ceph.conf as its last stdout line
#   scripts/ceph-cluster.sh status DIR  exit 0 when it is up and pool writes work
#   scripts/ceph-cluster.sh stop DIR    kill its daemons and remove DIR
#
# One mon on 127.0.0.1:$CEPH_MON_PORT (default 6789, msgr v1 only; "auto" picks
# a free port in 40000-49999, for several clusters side by side), one mgr,
# one OSD on memstore ($CEPH_MEMSTORE_BYTES, default 4 GiB: RAM, used as
# written), auth none, pools of size 1, and a pool "rbd" initialised for RBD.
# Everything the daemons write (data, logs, pid files, admin sockets) stays in
# DIR. The daemons run as the calling user (root in CI). Missing Debian
# packages are installed when run as root. Only the ceph.conf path goes to
# stdout; all progress and errors go to stderr.
#
# Use it with: export CEPH_CONF=$(scripts/ceph-cluster.sh start /tmp/cairn-ceph)
set -euo pipefail

PORT=${CEPH_MON_PORT:-6789}
MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-$((4 << 30))}
TIMEOUT=${CEPH_START_TIMEOUT:-60}
MARKER="# cairn throwaway cluster"
PACKAGES=(ceph-mon ceph-osd ceph-mgr ceph-common)

export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "ceph-cluster: $*" >&2; }

die() {
	log "ERROR: $*"
	if [[ ${STARTING-} == 1 ]]; then
		kill_daemons
		log "daemons stopped; logs left in ${DIR-}/log (remove with: $0 stop ${DIR-})"
	fi
	if [[ -n ${DIR-} && -d ${DIR-}/log ]]; then
		for f in "$DIR"/log/*.log; do
			[[ -f $f ]] || continue
			echo "----- tail of $f -----" >&2
			tail -n 30 "$f" >&2 || true
		done
	fi
	exit 1
}

# usage, install_packages
. "$(dirname "${BASH_SOURCE[0]}")/throwaway-lib.sh"

# ceph CLI against this cluster, bounded in time.
c() { timeout 20 ceph -c "$DIR/ceph.conf" --connect-timeout 10 "$@"; }

# pool_usable succeeds when a test object can be written to and removed from
# pool rbd.
pool_usable() {
	[[ -f $DIR/ceph.conf ]] || return 1
	local probe="$DIR/run/probe"
	echo "cairn probe" >"$probe"
	timeout 10 rados -c "$DIR/ceph.conf" -p rbd put cairn-probe "$probe" >/dev/null 2>&1 &&
		timeout 10 rados -c "$DIR/ceph.conf" -p rbd rm cairn-probe >/dev/null 2>&1
}

# wait_for DESC CMD...: retries CMD until it succeeds or TIMEOUT seconds pass.
wait_for() {
	local desc=$1 deadline=$((SECONDS + TIMEOUT))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "$desc did not come up within ${TIMEOUT}s"
		sleep 0.5
	done
}

# retry CMD...: runs CMD until it succeeds (a mon that has just formed a
# quorum refuses some commands for a moment), at most TIMEOUT seconds; prints
# the successful run's stdout and the last failure's stderr.
retry() {
	local deadline=$((SECONDS + TIMEOUT)) out
	until out=$("$@" 2>"$DIR/run/retry.err"); do
		if ((SECONDS >= deadline)); then
			cat "$DIR/run/retry.err" >&2
			return 1
		fi
		sleep 0.5
	done
	[[ -z $out ]] || echo "$out"
}

daemons_alive() {
	local f n=0
	for f in "$DIR"/run/*.pid; do
		[[ -f $f ]] || continue
		kill -0 "$(cat "$f")" 2>/dev/null || return 1
		n=$((n + 1))
	done
	((n == 3))
}

write_conf() {
	local fsid=$1
	cat >"$DIR/ceph.conf" <<EOF
$MARKER (scripts/ceph-cluster.sh); removed by "stop".
[global]
fsid = $fsid
mon host = [v1:127.0.0.1:$PORT]
# OSD and mgr bind loopback too, not every interface.
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
admin socket = $DIR/run/\$name.\$pid.asok
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on msgr2 not enabled = false
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0

[mon]
mon data = $DIR/mon/\$name
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok

[mgr]
mgr data = $DIR/mgr/\$name
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok

[osd]
osd data = $DIR/osd/\$name
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
EOF
}

start() {
	install_packages
	if [[ -f $DIR/ceph.conf ]]; then
		if daemons_alive && pool_usable; then
			log "cluster in $DIR is already up"
			echo "$DIR/ceph.conf"
			return 0
		fi
		log "cluster in $DIR is not healthy; recreating it"
		stop
	fi
	[[ ! -e $DIR || -z $(ls -A "$DIR") ]] || die "$DIR exists and is not a cairn throwaway cluster; refusing to touch it"
	if [[ $PORT == auto ]]; then
		local i
		for ((i = 0; i < 50; i++)); do
			PORT=$((40000 + RANDOM % 10000))
			port_in_use "$PORT" || break
		done
	fi
	if port_in_use "$PORT"; then
		die "port $PORT on 127.0.0.1 is in use (set CEPH_MON_PORT to another port)"
	fi

	STARTING=1
	mkdir -p "$DIR"/{run,log,crash,mon/mon.a,mgr/mgr.x,osd}
	DIR=$(cd "$DIR" && pwd)
	local fsid
	fsid=$(cat /proc/sys/kernel/random/uuid)
	write_conf "$fsid"
	# Tools look for a keyring even with auth none; give them a harmless one.
	printf '[client.admin]\n\tkey = AQBgTIlpAAAAABAAXsYZvLWmTDIJfYxNmTXJvg==\n' >"$DIR/keyring"

	log "mon: mkfs and start on 127.0.0.1:$PORT"
	monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$PORT]" "$DIR/run/monmap" >&2
	ceph-mon -c "$DIR/ceph.conf" -i a --mkfs --monmap "$DIR/run/monmap" >&2 ||
		die "ceph-mon --mkfs failed"
	ceph-mon -c "$DIR/ceph.conf" -i a >&2 || die "ceph-mon did not start"
	wait_for "the mon" c mon stat

	log "mgr: start"
	ceph-mgr -c "$DIR/ceph.conf" -i x >&2 || die "ceph-mgr did not start"

	log "osd: create, mkfs and start (memstore, $MEMSTORE_BYTES bytes)"
	local id
	id=$(retry c osd create) || die "ceph osd create failed"
	mkdir -p "$DIR/osd/osd.$id"
	ceph-osd -c "$DIR/ceph.conf" -i "$id" --mkfs >&2 2>"$DIR/log/osd-mkfs.log" ||
		die "ceph-osd --mkfs failed: $(cat "$DIR/log/osd-mkfs.log")"
	# With auth none a fresh client may send its first mon command before it
	# has the monmap, and the mon refuses it ("wrong fsid"); ceph-osd then
	# exits during init. Retry the start.
	retry ceph-osd -c "$DIR/ceph.conf" -i "$id" >&2 || die "ceph-osd did not start"
	wait_for "osd.$id" osd_up "$id"

	log "pool rbd: create and init"
	retry c osd pool create rbd 8 >&2 || die "ceph osd pool create rbd failed"
	retry timeout 30 rbd -c "$DIR/ceph.conf" pool init rbd >&2 || die "rbd pool init failed"
	wait_for "writes to pool rbd" pool_usable
	daemons_alive || die "a daemon died during start"
	log "cluster up in $DIR (mon 127.0.0.1:$PORT)"
	echo "$DIR/ceph.conf"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

osd_up() { c osd dump 2>/dev/null | grep -Eq "^osd\.$1 up"; }

stop() {
	[[ -e $DIR ]] || return 0
	if [[ -f $DIR/ceph.conf ]] && ! head -n 1 "$DIR/ceph.conf" | grep -qF "$MARKER"; then
		die "$DIR/ceph.conf is not a cairn throwaway cluster; refusing to remove $DIR"
	fi
	[[ -f $DIR/ceph.conf || -z $(ls -A "$DIR") ]] ||
		die "$DIR has no ceph.conf of a throwaway cluster; refusing to remove it"
	kill_daemons
	rm -rf "$DIR"
	log "stopped and removed $DIR"
}

# kill_daemons stops the daemons listed in DIR/run/*.pid (TERM, then KILL).
kill_daemons() {
	local f pid pids=()
	for f in "${DIR-}"/run/*.pid; do
		[[ -f $f ]] || continue
		pid=$(cat "$f")
		# Only signal a process that really is a Ceph daemon.
		if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == ceph-* ]]; then
			kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
		fi
	done
	local deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	return 0
}

status() {
	[[ -f $DIR/ceph.conf ]] || { log "no cluster in $DIR"; return 1; }
	daemons_alive || { log "a daemon of $DIR is not running"; return 1; }
	pool_usable || { log "pool rbd of $DIR does not accept writes"; return 1; }
	c -s >&2 || true
	echo "$DIR/ceph.conf"
}

(($# == 2)) || usage
DIR=$2
[[ -n $DIR && $DIR != / ]] || usage
DIR=${DIR%/}
case $1 in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
