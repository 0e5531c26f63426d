#!/usr/bin/env bash
# A throwaway OpenStack Keystone (identity v3) on loopback, for tests and CI.
#
#   scripts/keystone.sh start DIR   bring a Keystone up in DIR (idempotent);
#                                   prints DIR/keystone.env as its only stdout line
#   scripts/keystone.sh status DIR  exit 0 when it answers GET /v3 (prints the env path)
#   scripts/keystone.sh stop DIR    kill its process group and remove DIR
#
# Debian 12's python3-keystone (Zed, 22.0.x) without Apache: keystone-manage
# sets up an sqlite database, fernet token and credential keys in DIR, and
# bootstraps user "admin" (role "admin" on project "admin", domain Default),
# region RegionOne and the identity endpoints (public, internal, admin) at
# http://127.0.0.1:PORT/v3. scripts/keystone-wsgi.py then serves Keystone's
# WSGI application with Werkzeug's threaded server (one thread per
# connection), in its own session and process group; its pid, which is also
# the group id, is in DIR/keystone.pid. No memcache, no message queue:
# Keystone's cache is on, in the server's memory (dogpile.cache.memory; one
# process, so invalidation on revocation or role changes stays exact), since
# without it every token validation runs hundreds of SQL queries (~1 s).
# Passwords are hashed with bcrypt at 4 rounds (Keystone's default is 12) so
# that tests creating users and logging in stay fast.
#
# Environment:
#   KEYSTONE_PORT            TCP port on 127.0.0.1; "auto" (default) lets the
#                            kernel pick a free one (no race: the server binds
#                            before the port is used anywhere)
#   KEYSTONE_ADMIN_PASSWORD  the admin password (default: random, 32 hex
#                            digits); letters, digits and ._- only
#   KEYSTONE_START_TIMEOUT   seconds to wait for GET /v3 (default 60)
#   KEYSTONE_DEBUG=1         debug logging and insecure_debug (detailed
#                            error messages in responses)
#   KEYSTONE_PYTHON          the Python that has Keystone (default
#                            /usr/bin/python3, whatever python3 PATH finds)
#
# DIR/keystone.env holds "export OS_AUTH_URL=... OS_USERNAME=admin ..." lines
# (values unquoted) for clients: source it, or parse it. Logs: DIR/keystone.log
# (Keystone, including one line per request), DIR/wsgi.log (server start-up)
# and DIR/manage-*.log (keystone-manage). Only the env file path goes to stdout;
# all progress and errors go to stderr. Missing Debian packages are installed
# when run as root.
#
# Use it with: . "$(scripts/keystone.sh start /tmp/cairn-keystone)"
set -euo pipefail

PORT=${KEYSTONE_PORT:-auto}
TIMEOUT=${KEYSTONE_START_TIMEOUT:-60}
PY=${KEYSTONE_PYTHON:-/usr/bin/python3}
MARKER="# cairn throwaway keystone"
PACKAGES=(python3-keystone python3-werkzeug)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export PATH="$PATH:/usr/bin:/usr/sbin:/sbin"

log() { echo "keystone: $*" >&2; }

die() {
	log "ERROR: $*"
	if [[ ${STARTING-} == 1 ]]; then
		kill_server
		log "server stopped; logs left in ${DIR-} (remove with: $0 stop ${DIR-})"
	fi
	local f
	for f in "${DIR-}"/manage-*.log "${DIR-}"/{wsgi,keystone}.log; do
		[[ -s $f ]] || continue
		[[ $f != */manage-*.log || -e ${f%.log}.failed ]] || continue
		echo "----- tail of $f -----" >&2
		tail -n 30 "$f" >&2 || true
	done
	# Again after the logs, so that a caller showing only the last lines
	# still shows why.
	[[ -z ${STARTING-} ]] || log "ERROR: $* (logs above)"
	exit 1
}

# usage, install_packages
. "$(dirname "${BASH_SOURCE[0]}")/throwaway-lib.sh"

# manage CMD ARGS...: keystone-manage CMD against DIR/keystone.conf; its
# output (and the interpreter's noise at exit) goes to DIR/manage-CMD.log,
# and a failure leaves DIR/manage-CMD.failed, for die to show that log.
manage() {
	keystone-manage --config-file "$DIR/keystone.conf" "$@" >"$DIR/manage-$1.log" 2>&1 ||
		{ touch "$DIR/manage-$1.failed"; return 1; }
}

# answers [URL]: GET URL (default: this Keystone's /v3) returns 200 with the
# v3 version document.
answers() {
	local url=${1-}
	if [[ -z $url ]]; then
		[[ -f $DIR/keystone.port ]] || return 1
		url="http://127.0.0.1:$(cat "$DIR/keystone.port")/v3"
	fi
	"$PY" - "$url" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.exit(0 if r.status == 200 and json.load(r)["version"]["id"].startswith("v3") else 1)
EOF
}

server_pid() {
	local pid
	[[ -f $DIR/keystone.pid ]] || return 1
	pid=$(cat "$DIR/keystone.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	# Only a live keystone-wsgi.py serving this DIR counts.
	tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "keystone-wsgi.py --config-dir $DIR " || return 1
	echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() {
	local debug=false
	[[ ${KEYSTONE_DEBUG-} == 1 ]] && debug=true
	cat >"$DIR/keystone.conf" <<EOF
$MARKER (scripts/keystone.sh); removed by "stop".
[DEFAULT]
log_file = $DIR/keystone.log
use_stderr = false
debug = $debug
insecure_debug = $debug

[database]
connection = sqlite:///$DIR/keystone.db?check_same_thread=false
sqlite_synchronous = false

[token]
provider = fernet

[fernet_tokens]
key_repository = $DIR/fernet-keys

[fernet_receipts]
key_repository = $DIR/fernet-keys

[credential]
key_repository = $DIR/credential-keys

[identity]
password_hash_algorithm = bcrypt
password_hash_rounds = 4

[cache]
enabled = true
backend = dogpile.cache.memory
EOF
}

write_env() {
	cat >"$DIR/keystone.env.tmp" <<EOF
export OS_AUTH_URL=http://127.0.0.1:$1/v3
export OS_USERNAME=admin
export OS_PASSWORD=$2
export OS_PROJECT_NAME=admin
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=RegionOne
EOF
	mv "$DIR/keystone.env.tmp" "$DIR/keystone.env"
}

start() {
	install_packages
	command -v keystone-manage >/dev/null || die "keystone-manage not found (Debian package python3-keystone)"
	[[ -x $PY ]] || die "$PY not found (set KEYSTONE_PYTHON)"
	if [[ -f $DIR/keystone.conf ]] && head -n 1 "$DIR/keystone.conf" | grep -qF "$MARKER"; then
		if server_pid >/dev/null && answers && [[ -f $DIR/keystone.env ]]; then
			log "keystone in $DIR is already up"
			echo "$DIR/keystone.env"
			return 0
		fi
		log "keystone in $DIR is not healthy; recreating it"
		stop
	fi
	[[ ! -e $DIR || -z $(ls -A "$DIR") ]] || die "$DIR exists and is not a cairn throwaway keystone; refusing to touch it"
	if [[ $PORT == auto ]]; then
		PORT=0
	elif [[ ! $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
		die "KEYSTONE_PORT must be a port number or auto, not $PORT"
	elif port_in_use "$PORT"; then
		die "port $PORT on 127.0.0.1 is in use (set KEYSTONE_PORT to another port, or auto)"
	fi
	local password=${KEYSTONE_ADMIN_PASSWORD:-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')}
	[[ $password =~ ^[A-Za-z0-9._-]+$ ]] || die "KEYSTONE_ADMIN_PASSWORD may hold letters, digits and ._- only"

	STARTING=1
	local t0=$SECONDS
	umask 077 # keystone.env holds the admin password
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd)
	mkdir -p -m 0700 "$DIR"/{fernet-keys,credential-keys}
	write_conf
	local user group
	user=$(id -un)
	group=$(id -gn)

	# Each keystone-manage spends about 2 s importing Keystone; these three
	# are independent, so they run side by side.
	log "database (sqlite) and keys in $DIR"
	local sync fernet cred failed=
	manage db_sync &
	sync=$!
	manage fernet_setup --keystone-user "$user" --keystone-group "$group" &
	fernet=$!
	manage credential_setup --keystone-user "$user" --keystone-group "$group" &
	cred=$!
	wait "$sync" || failed+=" db_sync"
	wait "$fernet" || failed+=" fernet_setup"
	wait "$cred" || failed+=" credential_setup"
	[[ -z $failed ]] || die "keystone-manage$failed failed"

	# The server binds its port first and writes it to keystone.port; it
	# loads Keystone while bootstrap writes the catalog. Its own session
	# (setsid, not forking: a background job of this shell is no group
	# leader) makes its pid the process group id that stop kills.
	log "server: start"
	setsid "$PY" "$HERE/keystone-wsgi.py" --config-dir "$DIR" --host 127.0.0.1 --port "$PORT" \
		--port-file "$DIR/keystone.port" </dev/null >"$DIR/wsgi.log" 2>&1 &
	# Liveness here is kill -0 on the pid, not server_pid: until the child
	# has exec'd, its cmdline is still this shell's, and under load that
	# window was long enough for server_pid to call a starting server dead.
	local spid=$!
	echo "$spid" >"$DIR/keystone.pid"
	local deadline=$((SECONDS + TIMEOUT))
	until [[ -s $DIR/keystone.port ]]; do
		kill -0 "$spid" 2>/dev/null || die "the server exited during start"
		((SECONDS < deadline)) || die "the server did not bind a port within ${TIMEOUT}s"
		sleep 0.1
	done
	PORT=$(cat "$DIR/keystone.port")
	local url="http://127.0.0.1:$PORT/v3"

	log "bootstrap: admin, project admin, role admin, RegionOne, endpoints $url"
	manage bootstrap --bootstrap-username admin --bootstrap-password "$password" \
		--bootstrap-project-name admin --bootstrap-role-name admin \
		--bootstrap-service-name keystone --bootstrap-region-id RegionOne \
		--bootstrap-admin-url "$url" --bootstrap-public-url "$url" \
		--bootstrap-internal-url "$url" || die "keystone-manage bootstrap failed"

	until answers "$url"; do
		kill -0 "$spid" 2>/dev/null || die "the server exited during start"
		((SECONDS < deadline)) || die "GET $url did not answer within ${TIMEOUT}s"
		sleep 0.2
	done
	write_env "$PORT" "$password"
	log "keystone up in $DIR at $url ($((SECONDS - t0))s)"
	echo "$DIR/keystone.env"
}

stop() {
	[[ -e $DIR ]] || return 0
	if [[ -f $DIR/keystone.conf ]] && ! head -n 1 "$DIR/keystone.conf" | grep -qF "$MARKER"; then
		die "$DIR/keystone.conf is not a cairn throwaway keystone; refusing to remove $DIR"
	fi
	[[ -f $DIR/keystone.conf || -z $(ls -A "$DIR") ]] ||
		die "$DIR has no keystone.conf of a throwaway keystone; refusing to remove it"
	kill_server
	rm -rf "$DIR"
	log "stopped and removed $DIR"
}

# kill_server stops the server's process group (TERM, then KILL).
kill_server() {
	local pid
	pid=$(server_pid) || return 0
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
	local deadline=$((SECONDS + 10))
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
	kill -KILL -- "-$pid" 2>/dev/null || true
	return 0
}

status() {
	[[ -f $DIR/keystone.conf ]] || { log "no keystone in $DIR"; return 1; }
	server_pid >/dev/null || { log "the keystone server of $DIR is not running"; return 1; }
	answers || { log "keystone of $DIR does not answer GET /v3"; return 1; }
	echo "$DIR/keystone.env"
}

(($# == 2)) || usage
DIR=$2
[[ -n $DIR && $DIR != / ]] || usage
DIR=${DIR%/}
[[ ! -d $DIR ]] || DIR=$(cd "$DIR" && pwd)
case $1 in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
