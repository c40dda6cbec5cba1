#!/bin/sh
# The test runner. Each test program and each fuzz-corpus replay runs under a time limit (a
# deadlock fails in minutes, not at CI's limit), its output to $BUILD/test-logs/NAME.log (printed
# when it fails), then one line with its time. The Makefile runs one per target (make -j2 check):
#   run-tests.sh one NAME   test_NAME from $BUILD/tests, or fuzz_NAME replaying tests/fuzz/corpus/NAME
#   run-tests.sh summary    counts what the `one` runs recorded, the slowest first; non-zero on failure
#   run-tests.sh            every program, one after another, then the summary
set -u
BUILD=${BUILD:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
LOGS=$BUILD/test-logs
export BUILD

now() { date +%s.%N; }

one() {
	name=$1
	case $name in
	fuzz_*)
		prog=$BUILD/fuzz/$name; corpus=tests/fuzz/corpus/$name
		[ -x "$prog" ] && [ -d "$corpus" ] || { echo "=== $name: no program or corpus" >&2; return 2; }
		set -- "$prog" "$corpus"
		what="replayed $(ls "$corpus" | wc -l) corpus files" ;;
	*)
		prog=$BUILD/tests/$name
		[ -x "$prog" ] || { echo "=== $name: $prog not built" >&2; return 2; }
		set -- "$prog"
		what="" ;;
	esac
	mkdir -p "$LOGS"
	log=$LOGS/$name.log
	# A program that runs make itself (test_daemon's `make install`) must not take make's
	# jobserver pipes to be among its own descriptors: keep the variables, drop the pipes.
	if [ -n "${MAKEFLAGS:-}" ]; then
		MAKEFLAGS=$(printf '%s\n' "$MAKEFLAGS" | sed 's/ *--jobserver-[a-z]*=[^ ]*//g')
		export MAKEFLAGS
	fi
	t0=$(now)
	timeout --kill-after=10 "$TEST_TIMEOUT" "$@" >"$log" 2>&1
	rc=$?
	secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	# cmocka's own count, when the program is a cmocka program.
	count=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1 tests/p' "$log" | tail -n 1)
	[ -n "$what" ] || what=$count
	if [ "$rc" -eq 0 ]; then
		echo "pass $secs $name" >"$LOGS/$name.result"
		printf '=== %-22s %6s s  passed%s\n' "$name" "$secs" "${what:+ ($what)}"
		return 0
	fi
	echo "fail $secs $name" >"$LOGS/$name.result"
	{
		echo "=== $name: output ($log)"
		cat "$log"
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "=== $name: killed after $TEST_TIMEOUT s"
		fi
		printf '=== %-22s %6s s  FAILED (exit %d)\n' "$name" "$secs" "$rc"
	} >"$LOGS/$name.failure"
	cat "$LOGS/$name.failure"
	return 1
}

summary() {
	pass=0; fail=0; failed=""
	for r in "$LOGS"/*.result; do
		[ -e "$r" ] || continue
		read -r verdict secs name <"$r"
		if [ "$verdict" = pass ]; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
	done
	slowest=$(cat "$LOGS"/*.result 2>/dev/null | sort -k2,2 -rn | head -n 5 | awk '{printf "%s%s %s s", sep, $3, $2; sep=", "}')
	[ -z "$slowest" ] || echo "=== slowest: $slowest"
	[ -z "$failed" ] || echo "=== failed:$failed (their output: $LOGS/NAME.log)"
	echo "check: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
}

# The names `one` takes: every built test program, then every fuzz target with a corpus.
names() {
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] && basename "$t"
	done
	for f in "$BUILD"/fuzz/fuzz_*; do
		[ -x "$f" ] && [ -d "tests/fuzz/corpus/$(basename "$f")" ] && basename "$f"
	done
}

case ${1:-all} in
one) one "$2" ;;
summary) summary ;;
all)
	rm -f "$LOGS"/*.result "$LOGS"/*.failure
	for n in $(names); do
		one "$n"
	done
	summary ;;
*) echo "usage: run-tests.sh [one NAME | summary]" >&2; exit 64 ;;
esac
