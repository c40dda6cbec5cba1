#!/bin/sh
# Runs every test program under $BUILD/tests, each under a time limit (a deadlock fails in
# minutes, not at CI's limit), then replays every fuzz corpus through the standalone fuzz
# targets; prints a summary; exits non-zero if anything failed.
set -u
BUILD=${BUILD:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
export BUILD
pass=0; fail=0; failed=""
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	echo "=== $name"
	timeout --kill-after=10 "$TEST_TIMEOUT" "$t"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
	else
		[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "=== $name: killed after $TEST_TIMEOUT s"
		fail=$((fail + 1)); failed="$failed $name"
	fi
done
for f in "$BUILD"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus=tests/fuzz/corpus/$name
	[ -d "$corpus" ] || continue
	echo "=== $name: replaying $(ls "$corpus" | wc -l) corpus files"
	if timeout --kill-after=10 "$TEST_TIMEOUT" "$f" "$corpus"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); failed="$failed $name"
	fi
done
echo "=== test programs and corpus replays: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" -eq 0 ]
