#!/usr/bin/env bash
# A throwaway OpenStack control plane on loopback, for tests and CI.
#
#   scripts/openstack.sh start DIR   bring it up in DIR; prints DIR/openstack.env
#                                    as its only stdout line
#   scripts/openstack.sh stop DIR    kill every process group it started and
#                                    remove DIR (also after a failed start)
#
# Keystone (scripts/keystone.sh), Glance (RBD, pool "images"), Cinder api,
# scheduler and volume (RBD, pool "volumes"), Placement, Nova api,
# conductor, scheduler and compute (fake driver: attaches nothing), a
# neutron-server (ML2, no agents: scripts/openstack/neutron.sh), MariaDB and RabbitMQ,
# all on 127.0.0.1, from Debian 12's python3-* packages (Zed). It runs on
# the Ceph cluster CEPH_CONF names (scripts/ceph-cluster.sh), where it
# creates the pools volumes and images. Each daemon runs in its own session,
# its pid (= process group id) in DIR/pids/; stop signals those groups.
#
# Environment:
#   CEPH_CONF                 the cluster (required)
#   OPENSTACK_PORT_BASE       first of 12 consecutive ports on 127.0.0.1;
#                             "auto" (default) picks free ones in 20000-29999,
#                             so that several clouds can run side by side
#   OPENSTACK_START_TIMEOUT   seconds to wait for each service (default 180)
#
# DIR/openstack.env holds "export OS_...=..." lines for the admin (project
# admin, password admin) and CEPH_CONF; OS_VOLUME_API_VERSION is 3.54 (the
# attachments API with connectors) and OS_COMPUTE_API_VERSION 2.79. Logs
# are in DIR/log. Only the env file path goes to stdout.
#
# Use it with: . "$(CEPH_CONF=... scripts/openstack.sh start /tmp/cairn-os)"
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$HERE/openstack
PY=/usr/bin/python3 # Debian's, whatever python3 PATH finds first
TIMEOUT=${OPENSTACK_START_TIMEOUT:-180}
MARKER="cairn throwaway openstack"
PACKAGES=(python3-glance python3-cinder python3-nova python3-placement python3-neutron python3-openstackclient
	python3-keystone python3-werkzeug python3-pymysql python3-rbd python3-rados
	mariadb-server rabbitmq-server ceph-common)
# bin/ceph first: see its comment.
export PATH="$S/bin:/usr/bin:/usr/sbin:/bin:/sbin:$PATH"

log() { echo "openstack: $(printf '%5ds' $((SECONDS - ${T0:-SECONDS}))) $*" >&2; }

die() {
	log "ERROR: $*"
	if [[ ${STARTING-} == 1 ]]; then
		local j
		for j in $(jobs -p); do
			pkill -TERM -P "$j" 2>/dev/null || true
			kill -TERM "$j" 2>/dev/null || true
		done
		kill_all
		log "daemons stopped; logs left in $DIR/log (remove with: $0 stop $DIR)"
	fi
	exit 1
}

# usage, install_packages
. "$HERE/throwaway-lib.sh"
# write_configs
. "$S/configs.sh"
# write_neutron_config
. "$S/neutron.sh"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_ports sets the P_* ports from OPENSTACK_PORT_BASE.
pick_ports() {
	local base=${OPENSTACK_PORT_BASE:-auto} i n
	if [[ $base == auto ]]; then
		for ((n = 0; n < 50; n++)); do
			base=$((20000 + (RANDOM % 500) * 20))
			for ((i = 0; i < 12; i++)); do port_in_use $((base + i)) && continue 2; done
			break
		done
	fi
	[[ $base =~ ^[0-9]+$ ]] && ((base >= 1024 && base < 65520)) || die "OPENSTACK_PORT_BASE must be a port number or auto, not $base"
	for ((i = 0; i < 12; i++)); do
		! port_in_use $((base + i)) || die "port $((base + i)) on 127.0.0.1 is in use (set OPENSTACK_PORT_BASE)"
	done
	P_KS=$base P_DB=$((base + 1)) P_AMQP=$((base + 2)) P_DIST=$((base + 3)) P_EPMD=$((base + 4))
	P_GLANCE=$((base + 5)) P_CINDER=$((base + 6)) P_NOVA=$((base + 7)) P_PLACEMENT=$((base + 8))
	P_NEUTRON=$((base + 9))
}

# svc NAME CMD...: CMD in its own session (setsid makes its pid the process
# group id stop kills), output in $L/NAME.out.
svc() {
	local n=$1
	shift
	setsid "$@" </dev/null >"$L/$n.out" 2>&1 &
	echo $! >"$DIR/pids/$n.pid"
}

# daemon NAME MODULE:FUNC ARGS...: an entry point of a python3-* package.
daemon() {
	local n=$1 m=$2
	shift 2
	svc "$n" "$PY" "$S/run-main.py" "$n" "$m" "$@"
}

# manage NAME MODULE:FUNC ARGS...: a *-manage command in the foreground.
manage() {
	local n=$1 m=$2
	shift 2
	"$PY" "$S/run-main.py" "$n" "$m" "$@" >"$L/$n.log" 2>&1 || {
		tail -n 20 "$L/$n.log" >&2
		return 1
	}
}

# wait_for DESC CMD...: retries CMD until it succeeds, at most TIMEOUT s.
wait_for() {
	local d=$1 end=$((SECONDS + TIMEOUT))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || die "$d not up within ${TIMEOUT}s (logs in $L)"
		sleep 0.3
	done
	log "$d up"
}

http_ok() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" | grep -qE '^(200|300|401)$'; }

# retry N CMD...: a fresh cluster's mon refuses some first commands (EPERM).
retry() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	"$@" >&2
}

pools() {
	local p
	for p in volumes images; do
		if ! timeout 20 ceph -c "$CEPH_CONF" osd pool ls 2>/dev/null | grep -qx "$p"; then
			retry 20 timeout 20 ceph -c "$CEPH_CONF" osd pool create "$p" 8 || die "ceph osd pool create $p failed"
		fi
		retry 20 timeout 30 rbd -c "$CEPH_CONF" pool init "$p" || die "rbd pool init $p failed"
	done
}

start() {
	install_packages
	[[ -n ${CEPH_CONF-} && -f $CEPH_CONF ]] || die "CEPH_CONF must name the ceph.conf of a running cluster (scripts/ceph-cluster.sh start)"
	CEPH_CONF=$(cd "$(dirname "$CEPH_CONF")" && pwd)/$(basename "$CEPH_CONF")
	if [[ -f $DIR/marker ]]; then
		log "$DIR holds a cloud already; recreating it"
		stop
	fi
	[[ ! -e $DIR || -z $(ls -A "$DIR") ]] || die "$DIR exists and is not a cairn throwaway cloud; refusing to touch it"
	T0=$SECONDS
	pick_ports
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	echo "$MARKER (scripts/openstack.sh); removed by stop" >"$DIR/marker"
	STARTING=1
	E=$DIR/etc L=$DIR/log
	mkdir -p "$E" "$L" "$DIR/pids" "$DIR"/{cinder,nova,glance}/lock "$DIR/nova/instances"
	KS=http://127.0.0.1:$P_KS
	DB=mysql+pymysql://os:os@127.0.0.1:$P_DB
	AMQP=rabbit://guest:guest@127.0.0.1:$P_AMQP/
	write_configs
	write_neutron_config
	log "ports $P_KS-$P_NEUTRON; pools volumes and images on $CEPH_CONF"
	pools

	# MariaDB, epmd, RabbitMQ and Keystone start at once.
	mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=socket \
		--skip-test-db >"$L/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $L/mariadb-install.log)"
	svc mariadb mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/mysql.sock" --port="$P_DB" \
		--bind-address=127.0.0.1 --user=root --pid-file="$DIR/mysql.pid" --log-error="$L/mariadb.log" \
		--skip-log-bin --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
		--max-connections=1000 --skip-name-resolve
	# Erlang would daemonise an epmd of its own, outside every group stop
	# kills: start it here.
	svc epmd epmd -port "$P_EPMD" -address 127.0.0.1
	svc rabbitmq env HOME="$DIR/rabbitmq" ERL_EPMD_PORT="$P_EPMD" ERL_EPMD_ADDRESS=127.0.0.1 \
		RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$P_AMQP" \
		RABBITMQ_DIST_PORT="$P_DIST" RABBITMQ_MNESIA_BASE="$DIR/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$L/rabbitmq" \
		RABBITMQ_CONFIG_FILE="$DIR/rabbitmq/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/rabbitmq/enabled_plugins" \
		RABBITMQ_PID_FILE="$DIR/rabbitmq/rabbit.pid" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
		/usr/lib/rabbitmq/bin/rabbitmq-server
	(KEYSTONE_PORT=$P_KS KEYSTONE_ADMIN_PASSWORD=admin "$HERE/keystone.sh" start "$DIR/keystone" >/dev/null 2>"$L/keystone-start.log") &
	local ks=$!

	wait_for mariadb test -S "$DIR/mysql.sock"
	mariadb -S "$DIR/mysql.sock" -u root <<EOF || die "creating the databases failed"
CREATE USER 'os'@'127.0.0.1' IDENTIFIED BY 'os';
GRANT ALL PRIVILEGES ON *.* TO 'os'@'127.0.0.1';
CREATE DATABASE glance; CREATE DATABASE cinder; CREATE DATABASE placement;
CREATE DATABASE nova_api; CREATE DATABASE nova; CREATE DATABASE nova_cell0;
CREATE DATABASE neutron;
EOF

	# Schemas in parallel; Nova's four steps are the critical path.
	manage glance-manage glance.cmd.manage:main --config-file "$E/glance-api.conf" db_sync &
	local j1=$!
	manage cinder-manage cinder.cmd.manage:main --config-file "$E/cinder.conf" db sync &
	local j2=$!
	# placement-manage ignores OS_PLACEMENT_CONFIG_DIR: --config-file.
	(placement-manage --config-file "$E/placement/placement.conf" db sync >"$L/placement-manage.log" 2>&1) &
	local j3=$!
	(
		manage nova-manage-api nova.cmd.manage:main --config-file "$E/nova.conf" api_db sync &&
			manage nova-manage-cell0 nova.cmd.manage:main --config-file "$E/nova.conf" cell_v2 map_cell0 --database_connection "$DB/nova_cell0" &&
			manage nova-manage-cell1 nova.cmd.manage:main --config-file "$E/nova.conf" cell_v2 create_cell --name cell1 &&
			manage nova-manage-db nova.cmd.manage:main --config-file "$E/nova.conf" db sync
	) &
	local j4=$!
	manage neutron-db-manage neutron.db.migration.cli:main --config-file "$E/neutron.conf" upgrade heads &
	local j5=$!
	# One more try when Keystone fails to start: a throwaway cloud on a busy
	# 2-core machine is what is tested here, not Keystone. The first try's
	# logs stay in $L/keystone-try1 and its reason is printed either way.
	wait "$ks" || {
		log "keystone did not start: $(grep -h 'ERROR' "$L/keystone-start.log" | tail -n 1); once more, same port"
		mkdir -p "$L/keystone-try1"
		[[ ! -e $DIR/keystone ]] || mv "$DIR/keystone" "$L/keystone-try1/keystone"
		mv "$L/keystone-start.log" "$L/keystone-try1/start.log"
		KEYSTONE_PORT=$P_KS KEYSTONE_ADMIN_PASSWORD=admin "$HERE/keystone.sh" start "$DIR/keystone" >/dev/null 2>"$L/keystone-start.log" || {
			tail -n 40 "$L/keystone-try1/start.log" >&2
			tail -n 40 "$L/keystone-start.log" >&2
			die "keystone did not start, twice (logs in $L/keystone-try1/keystone and $DIR/keystone)"
		}
	}
	log "keystone up"
	set -a
	. "$DIR/keystone/keystone.env"
	set +a
	"$PY" "$S/cloud.py" catalog glance="$P_GLANCE" cinder="$P_CINDER" nova="$P_NOVA" placement="$P_PLACEMENT" \
		neutron="$P_NEUTRON" >"$L/catalog.log" 2>&1 || {
		tail -n 20 "$L/catalog.log" >&2
		die "service user and catalog"
	}
	log "service user and catalog"
	wait_for rabbitmq port_in_use "$P_AMQP"

	wait "$j1" || die "glance db_sync failed"
	daemon glance-api glance.cmd.api:main --config-file "$E/glance-api.conf" --log-file "$L/glance-api.log"
	wait "$j2" || die "cinder db sync failed"
	local s
	for s in api scheduler volume; do
		daemon "cinder-$s" "cinder.cmd.$s:main" --config-file "$E/cinder.conf" --log-file "$L/cinder-$s.log"
	done
	wait "$j3" || {
		tail -n 20 "$L/placement-manage.log" >&2
		die "placement db sync failed"
	}
	OS_PLACEMENT_CONFIG_DIR=$E/placement svc placement "$PY" "$S/wsgi-serve.py" placement.wsgi:init_application "$P_PLACEMENT"
	wait "$j5" || die "neutron db upgrade failed"
	PYTHONPATH=$S/bindall daemon neutron-server neutron.cmd.eventlet.server:main --config-file "$E/neutron.conf" \
		--log-file "$L/neutron-server.log"
	wait "$j4" || die "nova schemas failed"
	log "schemas"
	for s in api conductor scheduler compute; do
		daemon "nova-$s" "nova.cmd.$s:main" --config-file "$E/nova.conf" --log-file "$L/nova-$s.log"
	done

	wait_for glance-api http_ok "http://127.0.0.1:$P_GLANCE/"
	wait_for cinder-api http_ok "http://127.0.0.1:$P_CINDER/"
	wait_for placement http_ok "http://127.0.0.1:$P_PLACEMENT/"
	wait_for nova-api http_ok "http://127.0.0.1:$P_NOVA/"
	wait_for neutron-server http_ok "http://127.0.0.1:$P_NEUTRON/"
	"$PY" "$S/cloud.py" wait "$TIMEOUT" >&2 || die "cinder-volume or nova-compute did not come up (logs in $L)"
	log "cinder-volume up, nova-compute mapped"

	{
		cat "$DIR/keystone/keystone.env"
		echo "export OS_VOLUME_API_VERSION=3.54"
		echo "export OS_COMPUTE_API_VERSION=2.79"
		echo "export OS_INTERFACE=public"
		echo "export CEPH_CONF=$CEPH_CONF"
	} >"$DIR/openstack.env.tmp"
	mv "$DIR/openstack.env.tmp" "$DIR/openstack.env"
	STARTING=0
	log "cloud up in $DIR (load $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "$DIR/openstack.env"
}

# kill_all signals every process group in DIR/pids (TERM, 10 s, KILL) and
# stops Keystone.
kill_all() {
	local f pid pgs=()
	for f in "$DIR"/pids/*.pid; do
		[[ -f $f ]] || continue
		pid=$(cat "$f")
		[[ $pid =~ ^[0-9]+$ ]] || continue
		kill -TERM -- "-$pid" 2>/dev/null && pgs+=("$pid")
	done
	[[ ! -d $DIR/keystone ]] || "$HERE/keystone.sh" stop "$DIR/keystone" 2>/dev/null || true
	local end=$((SECONDS + 10))
	for pid in "${pgs[@]}"; do
		while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
		kill -KILL -- "-$pid" 2>/dev/null || true
	done
	rm -f "$DIR"/pids/*.pid
}

stop() {
	[[ -e $DIR ]] || return 0
	[[ -f $DIR/marker || -z $(ls -A "$DIR") ]] ||
		die "$DIR is not a cairn throwaway cloud (no marker); refusing to remove it"
	kill_all
	rm -rf "$DIR"
	log "stopped and removed $DIR"
}

(($# == 2)) || usage
DIR=$2
[[ -n $DIR && $DIR != / ]] || usage
DIR=${DIR%/}
[[ ! -d $DIR ]] || DIR=$(cd "$DIR" && pwd)
case $1 in
start) start ;;
stop) stop ;;
*) usage ;;
esac
