#!/bin/sh
# run-bench.sh — `make bench`: installs collectd-core when missing, then runs every benchmark in
# tests/bench BENCH_RUNS times (2: the machine may be shared, so report the better and the noise).
# Figures go to stdout and to $BUILD/bench/results.txt. Durations: see tests/bench/README.md.
set -u
BUILD=${BUILD:-build}
export BUILD
RUNS=${BENCH_RUNS:-2}
OUT="$BUILD/bench/results.txt"
mkdir -p "$BUILD/bench"

# collectd-core (and the libraries its modbus and write_http plugins load) for the side-by-side
# figures. The package ships no /etc/collectd/collectd.conf, so its service stays down; the
# benchmarks start collectd themselves with their own configuration and stop it by PID.
collectd_usable() {
	[ -x /usr/sbin/collectd ] && [ -f /usr/lib/collectd/modbus.so ] && [ -f /usr/lib/collectd/write_http.so ] &&
		! ldd /usr/lib/collectd/modbus.so /usr/lib/collectd/write_http.so 2>/dev/null | grep -q 'not found'
}
if [ -z "${BENCH_NO_COLLECTD:-}" ] && ! collectd_usable; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "run-bench: installing collectd-core (for the side-by-side figures)"
	$sudo apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
			collectd-core libyajl2 libcurl3-gnutls libmodbus5 >/dev/null ||
		echo "run-bench: collectd-core could not be installed; its figures will say skipped"
fi

status=0
: >"$OUT"
for name in bench_modbus bench_upload bench_idle bench_logtail bench_status bench_metrics; do
	bin="$BUILD/bench/$name"
	if [ ! -x "$bin" ]; then
		echo "run-bench: $name: not built, skipped" | tee -a "$OUT"
		continue
	fi
	run=1
	while [ "$run" -le "$RUNS" ]; do
		echo "== $name, run $run of $RUNS ($(date -u +%Y-%m-%dT%H:%M:%SZ))" | tee -a "$OUT"
		# The program's own exit status, which the pipe into tee would hide.
		{ "$bin" 2>&1; echo "$?" >"$BUILD/bench/.rc"; } | tee -a "$OUT"
		rc=$(cat "$BUILD/bench/.rc")
		if [ "$rc" != 0 ]; then
			echo "run-bench: $name exited $rc" | tee -a "$OUT"
			status=1
		fi
		run=$((run + 1))
	done
done
rm -f "$BUILD/bench/.rc"
echo "run-bench: figures in $OUT"
exit "$status"
