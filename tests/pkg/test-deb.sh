#!/bin/sh
# The Debian package on this machine (issue 17): `make deb` at VERSION and at a higher version,
# then, timed: dpkg -i, files, owners and modes; a daemon started by hand (no systemd here: the
# test stops and starts it by PID where systemd would) with records pending for a platform that
# is down; the upgrade (config, buffer and pending records kept, verify 0); dpkg -r (everything
# kept); dpkg -P (config gone, the buffer moved aside, not deleted). Then a second install whose
# records the reference platform acknowledged: its purge deletes the state folder.
# Runs as root with dpkg on a machine where labshare-agent is not installed; otherwise it says
# why it skips and passes. It undoes everything it did, on failure too.
set -eu
export LC_ALL=C
cd "$(dirname "$0")/../.."
TOP=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac

CONF_DIR=/etc/labshare-agent
CONF=$CONF_DIR/agent.json
STATE=/var/lib/labshare-agent
BIN=/usr/bin/labshare-agent
UNIT=/lib/systemd/system/labshare-agent.service
WANTS=/etc/systemd/system/multi-user.target.wants/labshare-agent.service

skip() { echo "test-deb: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "not root (dpkg -i needs it)"
command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || skip "no dpkg/apt-get: not Debian"
if dpkg-query -W -f='${db:Status-Status}' labshare-agent 2>/dev/null | grep -qv '^not-installed$'; then
	skip "labshare-agent is installed on this machine; the test would replace it"
fi
if [ -e $CONF_DIR ] || [ -e $STATE ]; then
	skip "$CONF_DIR or $STATE exists: an agent's files, not the test's"
fi
if [ -d /run/systemd/system ]; then
	skip "systemd runs here: the package would start the unit (this test drives the daemon by hand)"
fi

checks=0
ok() { checks=$((checks + 1)); }
fail() {
	echo "test-deb: FAIL: $*" >&2
	exit 1
}
# expect_mode PATH OWNER:GROUP MODE
expect_mode() {
	got=$(stat -c '%U:%G %a' "$1" 2>/dev/null) || fail "$1: missing"
	[ "$got" = "$2 $3" ] || fail "$1: $got, expected $2 $3"
	ok
}
# Commands as the agent's user, as the unit runs it (User=labshare, UMask=0077).
as_agent() { (cd / && umask 077 && setpriv --reuid=labshare --regid=labshare --init-groups -- "$@"); }
agent() { as_agent $BIN -c $CONF "$@"; }
# A number from status --json's "buffer" object.
buf_field() { printf '%s\n' "$1" | sed -n 's/.*"buffer":{[^}]*"'"$2"'":"*\([0-9a-f]*\).*/\1/p'; }
# Waits for a condition (a command) with a deadline in seconds; never sleeps for its own sake.
wait_for() {
	limit=$1
	shift
	end=$(($(date +%s) + limit))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || fail "timed out after $limit s waiting for: $*"
		sleep 0.05
	done
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
run_dpkg() {
	log=$WORK/dpkg-$(date +%s%N).log
	dpkg "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "dpkg $*"; }
	cat "$log" >"$WORK/dpkg.last"
}

WORK=$(mktemp -d /tmp/labshare-pkgtest.XXXXXX)
chmod 755 "$WORK"
DAEMON=""
PLATFORM=""
USER_BEFORE=$(getent passwd labshare || true)
# The folders earlier purges moved aside (none, or not the test's): kept.
purged() { for d in $STATE.purged-*; do [ -e "$d" ] && printf '%s\n' "$d"; done; true; }
PURGED_BEFORE=$(purged)

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	for pid in $DAEMON $PLATFORM; do
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	if dpkg-query -W -f='${db:Status-Status}' labshare-agent 2>/dev/null | grep -qv '^not-installed$'; then
		dpkg -P labshare-agent >/dev/null 2>&1 || dpkg -P --force-all labshare-agent >/dev/null 2>&1 || true
	fi
	rm -rf $CONF_DIR $STATE "$WANTS"
	for d in $STATE.purged-*; do
		[ -e "$d" ] || continue
		printf '%s\n' "$PURGED_BEFORE" | grep -qxF "$d" || rm -rf "$d"
	done
	if [ -z "$USER_BEFORE" ] && getent passwd labshare >/dev/null; then
		userdel labshare 2>/dev/null || true
	fi
	if [ -z "$USER_BEFORE" ] && getent group labshare >/dev/null; then
		groupdel labshare 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$WORK/daemon.log" ]; then
		echo "--- daemon log" >&2
		tail -n 30 "$WORK/daemon.log" >&2
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- Build: the package at VERSION, and the same tree at a higher version for the upgrade.
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)
NEXT=$VERSION+pkgtest1
ARCH=$(dpkg --print-architecture)
PKGBUILD=$BUILD/pkgtest
t0=$(date +%s)
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s BUILD="$PKGBUILD" "$@"; }
mk deb >"$WORK/build-old.log" 2>&1 || { cat "$WORK/build-old.log" >&2; fail "make deb"; }
mk deb VERSION="$NEXT" DEB_LINT=: >"$WORK/build-new.log" 2>&1 ||
	{ cat "$WORK/build-new.log" >&2; fail "make deb VERSION=$NEXT"; }
OLD=$PKGBUILD/labshare-agent_${VERSION}_$ARCH.deb
NEW=$PKGBUILD/labshare-agent_${NEXT}_$ARCH.deb
[ -f "$OLD" ] && [ -f "$NEW" ] || fail "make deb made no $OLD or $NEW"
grep -q '^make deb: ' "$WORK/build-old.log" || fail "make deb did not finish with lintian"
echo "test-deb: built $VERSION and $NEXT (lintian clean) in $(($(date +%s) - t0)) s"
if [ ! -x "$BUILD/refplat" ]; then
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s BUILD="$BUILD" "$BUILD/refplat" >/dev/null
fi
t1=$(date +%s)

# --- The package's contents: no configuration shipped, nothing in /etc at all.
if dpkg-deb -c "$OLD" | grep -q ' \./etc/'; then fail "the package ships files in /etc"; fi
ok
dpkg-deb -I "$OLD" | grep -q '^ Depends:.*libmodbus' || fail "Depends has no libmodbus (shlibs)"
ok
if dpkg-deb --ctrl-tarfile "$OLD" | tar -t | grep -q conffiles; then fail "the package has conffiles"; fi
ok

# --- Install.
run_dpkg -i "$OLD"
grep -q "write $CONF" "$WORK/dpkg.last" || fail "postinst did not say to write $CONF"
ok
expect_mode $BIN root:root 755
[ "$($BIN --version)" = "labshare-agent $VERSION" ] || fail "--version: $($BIN --version)"
ok
expect_mode $UNIT root:root 644
grep -qx "ConditionPathExists=$CONF" $UNIT || fail "unit: no ConditionPathExists=$CONF"
grep -qx "ExecStart=$BIN -c $CONF run" $UNIT || fail "unit: ExecStart is not $BIN"
ok
[ -L "$WANTS" ] || fail "the unit is not enabled ($WANTS)"
ok
if command -v systemd-analyze >/dev/null 2>&1; then
	systemd-analyze verify --man=no $UNIT >"$WORK/verify.log" 2>&1 ||
		{ cat "$WORK/verify.log" >&2; fail "systemd-analyze verify $UNIT"; }
	ok
fi
expect_mode /usr/lib/sysusers.d/labshare-agent.conf root:root 644
cmp -s /usr/lib/sysusers.d/labshare-agent.conf systemd/labshare-agent.sysusers || fail "sysusers.d entry differs"
expect_mode /usr/lib/tmpfiles.d/labshare-agent.conf root:root 644
cmp -s /usr/lib/tmpfiles.d/labshare-agent.conf systemd/labshare-agent.tmpfiles || fail "tmpfiles.d entry differs"
expect_mode /usr/share/man/man8/labshare-agent.8.gz root:root 644
DOC=/usr/share/doc/labshare-agent
expect_mode $DOC/agent.example.json root:root 644
cmp -s $DOC/agent.example.json config/agent.example.json || fail "example config differs"
expect_mode $DOC/README.Debian root:root 644
expect_mode $DOC/copyright root:root 644
expect_mode $CONF_DIR root:labshare 750
expect_mode $STATE labshare:labshare 750
[ -z "$(ls -A $CONF_DIR)" ] || fail "$CONF_DIR is not empty: $(ls -A $CONF_DIR)"
ok
uid=$(id -u labshare)
[ "$uid" -lt 1000 ] || fail "labshare is not a system user (uid $uid)"
id -nG labshare | tr ' ' '\n' | grep -qx dialout || fail "labshare is not in dialout"
ok
grep -q '_dh_action=restart' /var/lib/dpkg/info/labshare-agent.postinst ||
	fail "postinst does not restart the unit after an upgrade"
grep -q 'deb-systemd-invoke stop' /var/lib/dpkg/info/labshare-agent.prerm || fail "prerm does not stop the unit"
ok

# --- Configure for a platform that is down (nothing listens on port 1), start the daemon as
# systemd would, seal records.
SESSIONS=$WORK/sessions.jsonl
: >"$SESSIONS"
chmod 644 "$SESSIONS"
write_conf() {
	cat >$CONF <<EOF
{
  "agent": { "id": "pkg-test", "lab_code": "PKG-TEST", "timezone": "Asia/Shanghai", "user_ids": "plain" },
  "platform": { "url": "$1", "token_file": "$CONF_DIR/token", "ca_file": $2, "upload_interval_s": 1 },
  "instruments": [ { "id": "PKG-INS-1", "logs": [ { "path": "$SESSIONS", "format": "jsonl",
      "fields": { "start": "start", "end": "end", "user": "user", "org": "org" } } ] } ]
}
EOF
	printf 'pkg-test-token\n' >$CONF_DIR/token
	chown labshare $CONF_DIR/token
	chmod 600 $CONF_DIR/token
}
write_conf "https://127.0.0.1:1/api" null
agent check >/dev/null || fail "check refuses the test configuration"
running() { agent status --json | grep -q '"running":true'; }
start_daemon() {
	umask 077
	setpriv --reuid=labshare --regid=labshare --init-groups -- $BIN -c $CONF run \
		</dev/null >>"$WORK/daemon.log" 2>&1 &
	DAEMON=$!
	umask 022
	wait_for 20 running
}
stop_daemon() {
	kill -TERM "$DAEMON"
	rc=0
	wait "$DAEMON" || rc=$?
	DAEMON=""
	[ "$rc" -eq 0 ] || fail "the daemon's stop on SIGTERM exited $rc"
	ok
}
start_daemon
day=$(date -d yesterday +%F)
agent record --instrument PKG-INS-1 --start "$day 08:00" --end "$day 10:30" --user u1 --org o1 >/dev/null
agent record --instrument PKG-INS-1 --start "$day 13:00" --end "$day 14:00" --user u2 --org o2 >/dev/null
stop_daemon
st=$(agent status --json)
SEQ=$(buf_field "$st" last_seq)
HEAD=$(buf_field "$st" head_hash)
[ "$(buf_field "$st" pending)" = "$SEQ" ] && [ "$SEQ" -ge 2 ] || fail "expected $SEQ records pending: $st"
ok
CONF_SUM=$(sha $CONF)
TOKEN_SUM=$(sha $CONF_DIR/token)

# --- Upgrade (systemd would restart the daemon: stopped above by SIGTERM, started below).
run_dpkg -i "$NEW"
[ "$($BIN --version)" = "labshare-agent $NEXT" ] || fail "not upgraded: $($BIN --version)"
ok
[ "$(sha $CONF)" = "$CONF_SUM" ] && [ "$(sha $CONF_DIR/token)" = "$TOKEN_SUM" ] || fail "the upgrade changed the config"
ok
expect_mode $CONF_DIR root:labshare 750
expect_mode $CONF_DIR/token labshare:root 600
expect_mode $STATE labshare:labshare 750
expect_mode $STATE/buffer.db labshare:labshare 600
st=$(agent status --json)
[ "$(buf_field "$st" last_seq)" = "$SEQ" ] && [ "$(buf_field "$st" head_hash)" = "$HEAD" ] &&
	[ "$(buf_field "$st" pending)" = "$SEQ" ] || fail "the buffer changed in the upgrade: $st"
ok
agent verify >/dev/null || fail "verify after the upgrade"
ok
start_daemon
out=$(agent record --instrument PKG-INS-1 --start "$day 08:00" --end "$day 10:30" --user u1 --org o1)
case $out in *"already sealed"*) ok ;; *) fail "a session sealed before the upgrade was lost: $out" ;; esac
stop_daemon
st=$(agent status --json)
[ "$(buf_field "$st" acked_seq)" = 0 ] && [ "$(buf_field "$st" pending)" -ge "$SEQ" ] ||
	fail "records are no longer pending: $st"
ok
BUF_SUM=$(sha $STATE/buffer.db)

# --- Remove: everything kept.
run_dpkg -r labshare-agent
[ ! -e $BIN ] || fail "$BIN is still there after dpkg -r"
[ "$(sha $CONF)" = "$CONF_SUM" ] && [ "$(sha $STATE/buffer.db)" = "$BUF_SUM" ] || fail "dpkg -r changed config or buffer"
[ ! -e $STATE/.acked-at-removal ] || fail "prerm marked a buffer with pending records as acknowledged"
getent passwd labshare >/dev/null || fail "dpkg -r removed the user"
ok

# --- Purge: config gone, the buffer with pending records moved aside and named.
run_dpkg -P labshare-agent
[ ! -e $CONF_DIR ] || fail "$CONF_DIR is still there after dpkg -P"
[ ! -e $STATE ] || fail "$STATE is still there after dpkg -P"
[ ! -e "$WANTS" ] || fail "the unit is still enabled after dpkg -P"
moved=$(sed -n 's/.*moved to \(\/[^ ]*\).*/\1/p' "$WORK/dpkg.last")
[ -n "$moved" ] && [ -d "$moved" ] || fail "dpkg -P did not say where the buffer went: $(cat "$WORK/dpkg.last")"
[ "$(sha "$moved/buffer.db")" = "$BUF_SUM" ] || fail "the moved buffer differs"
expect_mode "$moved" labshare:labshare 750
ok

# --- Again, with records the reference platform acknowledged: purge deletes the state folder.
run_dpkg -i "$NEW"
grep -q "kept at an earlier purge is in $moved" "$WORK/dpkg.last" || fail "postinst did not point at $moved"
ok
sh tests/refplat/mkcerts.sh "$WORK/certs" >/dev/null
chmod 755 "$WORK/certs"
chmod 644 "$WORK/certs/ca.pem"
"$BUILD/refplat" --listen 127.0.0.1:0 --port-file "$WORK/platform.port" \
	--cert "$WORK/certs/server.pem" --key "$WORK/certs/server.key" --db "$WORK/platform.db" \
	--token pkg-test-token </dev/null >"$WORK/platform.log" 2>&1 &
PLATFORM=$!
wait_for 20 test -s "$WORK/platform.port"
write_conf "https://127.0.0.1:$(cat "$WORK/platform.port")/api" "\"$WORK/certs/ca.pem\""
agent record --instrument PKG-INS-1 --start "$day 08:00" --end "$day 10:30" --user u1 --org o1 >/dev/null
agent flush >/dev/null || fail "flush to the reference platform"
st=$(agent status --json)
[ "$(buf_field "$st" pending)" = 0 ] || fail "records still pending after flush: $st"
run_dpkg -r labshare-agent
[ -s $STATE/.acked-at-removal ] || fail "prerm did not record the acknowledged buffer"
[ -e $STATE/buffer.db ] || fail "dpkg -r removed the buffer"
ok
run_dpkg -P labshare-agent
[ ! -e $STATE ] && [ ! -e $CONF_DIR ] || fail "dpkg -P kept an acknowledged buffer or the config"
extra=$(purged | grep -vxF "$moved" | grep -vxF "${PURGED_BEFORE:-/none}" || true)
[ -z "$extra" ] || fail "dpkg -P moved an acknowledged buffer aside: $extra"
ok

# --- Without systemd-sysusers and systemd-tmpfiles (a container without systemd), postinst
# makes the same user and folders with adduser and install -d, and may run again.
if [ -z "$USER_BEFORE" ]; then
	userdel labshare
	getent group labshare >/dev/null && groupdel labshare
	mkdir "$WORK/bin" "$WORK/ctl"
	for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
		for f in "$d"/*; do
			n=${f##*/}
			case $n in systemd-sysusers | systemd-tmpfiles) continue ;; esac
			[ -e "$WORK/bin/$n" ] || ln -s "$f" "$WORK/bin/$n"
		done
	done
	dpkg-deb -e "$NEW" "$WORK/ctl"
	for run in 1 2; do
		PATH=$WORK/bin sh "$WORK/ctl/postinst" configure >"$WORK/postinst.log" 2>&1 ||
			{ cat "$WORK/postinst.log" >&2; fail "postinst without systemd-sysusers (run $run)"; }
	done
	[ "$(id -u labshare)" -lt 1000 ] && id -nG labshare | tr ' ' '\n' | grep -qx dialout ||
		fail "adduser's labshare: $(id labshare)"
	expect_mode $CONF_DIR root:labshare 750
	expect_mode $STATE labshare:labshare 750
	rm -rf $CONF_DIR $STATE
fi

echo "test-deb: $checks checks passed; install, upgrade, remove, purge in $(($(date +%s) - t1)) s"
