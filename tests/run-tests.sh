#!/bin/sh
# Runs every test program under $BUILD/tests; prints a summary; exits non-zero if any failed.
set -u
BUILD=${BUILD:-build}
export BUILD
pass=0; fail=0; failed=""
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	echo "=== $name"
	if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
done
echo "=== test programs: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" -eq 0 ]
