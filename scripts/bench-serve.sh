# scripts/bench-serve.sh: sourced by the bench scripts that drive a running
# `cairn serve` (bench-api.sh, bench-console.sh, bench-openstack.sh).
#
# start_serve DATA_DIR CONFIG: starts "$CAIRN_BIN" serve on a free port of
# 127.0.0.1 with its output in $W/serve.out and $W/serve.log, sets
# SERVE_PID (the caller's EXIT trap stops it) and URL, and returns once
# /healthz answers. Needs W, CAIRN_BIN and a die function.
start_serve() {
	"$CAIRN_BIN" --json serve --listen 127.0.0.1:0 --data-dir "$1" --config "$2" \
		>"$W/serve.out" 2>"$W/serve.log" &
	SERVE_PID=$!
	local addr= _
	for _ in $(seq 600); do
		addr=$(sed -n 's/.*"listen": *"\([^"]*\)".*/\1/p' "$W/serve.out" | head -1)
		[[ -n $addr ]] && break
		kill -0 "$SERVE_PID" 2>/dev/null || die "cairn serve exited: $(tail -5 "$W/serve.log")"
		sleep 0.1
	done
	[[ -n $addr ]] || die "cairn serve printed no listen address"
	URL=http://$addr
	for _ in $(seq 300); do
		curl -fsS "$URL/healthz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "/healthz of cairn serve at $URL not OK: $(tail -5 "$W/serve.log")"
}
