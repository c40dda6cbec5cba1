#!/bin/sh
# run-bench.sh — `make bench`: installs collectd-core when missing, then runs every benchmark in
# tests/bench BENCH_RUNS times (2: the machine may be shared, so a goal counts as met only when it
# is met in both runs). Figures go to stdout and to $BUILD/bench/results.txt; the summary (the
# machine, the load before and after, every GOAL line grouped per goal with the runs side by
# side) to stdout and $BUILD/bench/summary.txt. Durations: see tests/bench/README.md.
set -u
BUILD=${BUILD:-build}
export BUILD
RUNS=${BENCH_RUNS:-2}
OUT="$BUILD/bench/results.txt"
SUMMARY="$BUILD/bench/summary.txt"
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

# The machine and its load, for the top of the summary.
machine() {
	model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
	mem=$(awk '/^MemTotal:/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
	echo "machine: $(nproc) CPUs (${model:-unknown}), $mem, $(uname -sr)"
}
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Every program, in this order; any other bench_* that was built runs after them.
PROGRAMS="bench_modbus bench_recovery bench_idle bench_status bench_upload bench_logtail bench_glob bench_metrics bench_long"
for bin in "$BUILD"/bench/bench_*; do
	name=${bin##*/}
	[ -x "$bin" ] || continue
	case " $PROGRAMS " in *" $name "*) ;; *) PROGRAMS="$PROGRAMS $name" ;; esac
done

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(load)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The command as it was given: make bench with the BENCH_* variables that were set.
command="$(env | grep '^BENCH_' | sort | tr '\n' ' ')make bench"
status=0
: >"$OUT"
{
	machine
	echo "command: $command; commit $commit; load before: $load_before; started $started"
} | tee -a "$OUT"
for name in $PROGRAMS; do
	bin="$BUILD/bench/$name"
	if [ ! -x "$bin" ]; then
		case "$name" in bench_glob | bench_long | bench_recovery) ;; *) echo "run-bench: $name: not built, skipped" | tee -a "$OUT" ;; esac
		continue
	fi
	run=1
	while [ "$run" -le "$RUNS" ]; do
		echo "== $name, run $run of $RUNS ($(date -u +%Y-%m-%dT%H:%M:%SZ), load $(load))" | tee -a "$OUT"
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
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# The summary: GOAL lines of results.txt, grouped per goal (in the order first seen), each run's
# figures beside the others, and "met" only when every run met it.
{
	echo "== summary: $command, commit $commit, $started to $finished"
	machine
	echo "load average: before $load_before, after $(load)"
	echo "runs: $RUNS of each program; a goal is met only when it is met in every run"
	echo
	awk -v runs="$RUNS" '
		/^== bench_[a-z_0-9]*, run [0-9]+ of/ { prog = $2; sub(/,$/, "", prog); run = $4; next }
		/^GOAL / {
			line = substr($0, 6)
			c = index(line, ": agent ")
			if (c == 0) next
			name = substr(line, 1, c - 1)
			rest = substr(line, c + 2)
			verdict = rest; sub(/.* /, "", verdict)
			figs = rest; sub(/ [^ ]*$/, "", figs)
			key = prog SUBSEP name
			if (!(key in seen)) { seen[key] = 1; order[++n] = key; progs[key] = prog; names[key] = name }
			fig[key, run] = figs; ver[key, run] = verdict
		}
		END {
			met = 0; missed = 0
			for (i = 1; i <= n; i++) {
				key = order[i]
				all = 1
				for (r = 1; r <= runs; r++) if (ver[key, r] != "met") all = 0
				printf "%-6s %s (%s)\n", all ? "MET" : "MISSED", names[key], progs[key]
				for (r = 1; r <= runs; r++) {
					if ((key, r) in fig) printf "         run %d: %s  %s\n", r, fig[key, r], ver[key, r]
					else printf "         run %d: no figure (the program failed or skipped it)\n", r
				}
				if (all) met++; else missed++
			}
			printf "\n%d goals: %d met in every run, %d missed\n", n, met, missed
		}' "$OUT"
} >"$SUMMARY"
# The same as a Markdown table for tests/bench/README.md's "Latest figures".
awk -v runs="$RUNS" -v cmd="$command" -v when="commit $commit, $started to $finished, load average $load_before before" '
	/^== bench_[a-z_0-9]*, run [0-9]+ of/ { prog = $2; sub(/,$/, "", prog); run = $4; next }
	/^GOAL / {
		line = substr($0, 6)
		c = index(line, ": agent ")
		if (c == 0) next
		name = substr(line, 1, c - 1)
		rest = substr(line, c + 2)
		verdict = rest; sub(/.* /, "", verdict)
		figs = rest; sub(/ [^ ]*$/, "", figs)
		goal = figs; sub(/.*\(goal /, "", goal); sub(/\)$/, "", goal)
		if (goal !~ /^agent /) goal = "ratio " goal
		sub(/ \(goal .*/, "", figs)
		key = prog SUBSEP name
		if (!(key in seen)) { seen[key] = 1; order[++n] = key; names[key] = name; goals[key] = goal }
		fig[key, run] = figs; ver[key, run] = verdict
	}
	END {
		printf "`%s` (%s, %d runs).\n\n| goal | target |", cmd, when, runs
		for (r = 1; r <= runs; r++) printf " run %d |", r
		printf " met in every run |\n|---|---|"
		for (r = 1; r <= runs; r++) printf "---|"
		printf "---|\n"
		for (i = 1; i <= n; i++) {
			key = order[i]; all = 1
			printf "| %s | %s |", names[key], goals[key]
			for (r = 1; r <= runs; r++) {
				if (ver[key, r] != "met") all = 0
				if ((key, r) in fig) printf " %s: %s |", fig[key, r], ver[key, r]; else printf " no figure |"
			}
			printf " %s |\n", all ? "**met**" : "missed"
		}
	}' "$OUT" >"$BUILD/bench/summary.md"
cat "$SUMMARY"
echo "run-bench: figures in $OUT, summary in $SUMMARY (as a Markdown table: $BUILD/bench/summary.md)"
exit "$status"
