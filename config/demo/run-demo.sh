#!/bin/sh
# make demo: the agent against the bundled Modbus simulator and the local reference platform,
# with two instruments' session logs; then the sharing report. Everything it starts, it stops.
set -eu
BUILD=${BUILD:-build}
TOP=$(pwd)
AGENT=$TOP/$BUILD/labshare-agent
DIR=$(mktemp -d /tmp/labshare-demo-XXXXXX)
CFG=$DIR/agent.json
PIDS=""

cleanup() {
	for p in $PIDS; do
		if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
	done
}
trap cleanup EXIT INT TERM

# wait_for SECONDS COMMAND…: poll until the command succeeds, or give up.
wait_for() {
	limit=$1; shift
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt $((limit * 20)) ]; then echo "demo: timed out waiting for: $*" >&2; exit 1; fi
		sleep 0.05
	done
}
say() { printf '\n== %s\n' "$*"; }

mkdir -p "$DIR/logs" "$DIR/certs"
say "labshare-agent demo in $DIR"
sh tests/refplat/mkcerts.sh "$DIR/certs" >/dev/null
(umask 077; echo "demo-token" > "$DIR/token")

# The platform: the reference implementation of the feed, over HTTPS.
"$TOP/$BUILD/refplat" --listen 127.0.0.1:0 --port-file "$DIR/platform.port" \
	--cert "$DIR/certs/server.pem" --key "$DIR/certs/server.key" --db "$DIR/platform.db" \
	--token demo-token </dev/null >"$DIR/platform.log" 2>&1 &
PIDS="$PIDS $!"
# An LC-MS behind a Modbus TCP gateway, metered by a CHINT DDSU666 on its supply (the built-in
# profile's registers: 0x2000 V, 0x2004 kW, 0x200E Hz, 0x4000 kWh), with its own sample count.
# The simulator takes commands on a FIFO, so the demo can move the meter's readings on.
cat >"$DIR/sim.script" <<'SIM'
set 0 1 holding 8192 f32 big 229.8
set 0 1 holding 8206 f32 big 50
set 0 1 holding 8196 f32 big 0.012
set 0 1 holding 16384 f32 big 1520
set 0 1 holding 200 u32 little 1234
SIM
mkfifo "$DIR/sim.ctl"
"$TOP/$BUILD/modbus-sim" --tcp 127.0.0.1:0 --units 1 --regs 65536 --port-file "$DIR/modbus.port" \
	--script "$DIR/sim.script" <"$DIR/sim.ctl" >"$DIR/sim.log" 2>&1 &
PIDS="$PIDS $!"
exec 3>"$DIR/sim.ctl"
# sim COMMAND: one control command, applied before it returns (the reply is in sim.log).
sim_lines_past() { test "$(wc -l <"$DIR/sim.log")" -gt "$1"; }
sim() {
	n=$(wc -l <"$DIR/sim.log")
	echo "$*" >&3
	wait_for 5 sim_lines_past "$n"
}
wait_for 10 test -s "$DIR/platform.port"
wait_for 10 test -s "$DIR/modbus.port"

# Session logs as instruments write them: the NMR's usage CSV in GBK, the SEM's login log.
D1=$(date -d '2 days ago' +%F)
D2=$(date -d 'yesterday' +%F)
printf '%s\r\n' "开始时间,结束时间,用户,单位,样品数" \
	"$D1 08:30:00,$D1 11:00:00,张三,太原理工大学,3" \
	"$D1 13:00:00,$D1 15:30:00,李四,山西大学,2" \
	"$D2 09:00:00,$D2 12:00:00,王五,中北大学,5" \
	"$D2 14:00:00,$D2 17:30:00,张三,太原理工大学,4" |
	iconv -f UTF-8 -t GBK >"$DIR/logs/nmr-usage-$(date +%Y%m).csv"
cat >"$DIR/logs/sem-sessions.log" <<LOG
$D1 09:00:00 LOGIN user=zhao org=山西大学
$D1 12:00:00 LOGOUT user=zhao
$D2 10:00:00 LOGIN user=qian org=中国科学院山西煤炭化学研究所
$D2 16:00:00 LOGOUT user=qian
LOG

sed -e "s|@DIR@|$DIR|g" -e "s|@PLATFORM_PORT@|$(cat "$DIR/platform.port")|g" \
	-e "s|@MODBUS_PORT@|$(cut -d' ' -f1 "$DIR/modbus.port")|g" config/demo/agent.json.in >"$CFG"

say "labshare-agent check"
"$AGENT" -c "$CFG" check
say "labshare-agent profiles (the built-in meters)"
"$AGENT" -c "$CFG" profiles | head -6
say "labshare-agent scan gw1 --units 1-3 (which units answer, which meter each is)"
"$AGENT" -c "$CFG" scan gw1 --units 1-3 || true
say "labshare-agent poll"
"$AGENT" -c "$CFG" poll

# History: the LC-MS's last two days, read by an agent whose clock is set back (the benchmark's
# labshare-agent-testclock; the shipped binary has no such switch), once an hour while it runs.
# Each reading is one short run of that agent: the meter shows what it showed then.
HCFG=$DIR/history.json
sed -e "s|@DIR@|$DIR|g" -e "s|@PLATFORM_PORT@|$(cat "$DIR/platform.port")|g" \
	-e "s|@MODBUS_PORT@|$(cut -d' ' -f1 "$DIR/modbus.port")|g" config/demo/history.json.in >"$HCFG"
polled() { tr -d ' \n' <"$DIR/state/status.json" | grep -q '"reading":{"at":"[^"]*","ok":true'; }
# reading TIME KW KWH SAMPLES: the meter at TIME (the lab's time, Asia/Shanghai).
reading() {
	sim "set 0 1 holding 8196 f32 big $2"
	sim "set 0 1 holding 16384 f32 big $3"
	sim "set 0 1 holding 200 u32 little $4"
	LABSHARE_CLOCK_OFFSET_S=$(( $(TZ=Asia/Shanghai date -d "$1" +%s) - $(date +%s) )) \
		"$TOP/$BUILD/bench/labshare-agent-testclock" -c "$HCFG" run 2>>"$DIR/history.log" &
	hp=$!
	wait_for 15 polled
	kill -TERM "$hp"
	wait "$hp"
}
say "history: the LC-MS on $D1 09:00-11:30 and $D2 14:00-17:00, read by the meter"
reading "$D1 09:00:00" 0.85 1520     1234
reading "$D1 09:01:00" 0.85 1520.014 1234
reading "$D1 10:00:00" 0.86 1520.85  1236
reading "$D1 11:00:00" 0.84 1521.70  1239
reading "$D1 11:30:00" 0.02 1522.125 1240
reading "$D1 11:32:00" 0.02 1522.126 1240
reading "$D2 14:00:00" 0.85 1522.126 1240
reading "$D2 14:01:00" 0.87 1522.214 1240
reading "$D2 15:00:00" 0.85 1523.05  1243
reading "$D2 16:00:00" 0.83 1523.90  1245
reading "$D2 17:00:00" 0.02 1524.75  1247
reading "$D2 17:02:00" 0.02 1524.751 1247
# Now: it runs, drawing 850 W.
sim "set 0 1 holding 8196 f32 big 0.85"

say "labshare-agent run (in the background)"
"$AGENT" -c "$CFG" run 2>"$DIR/agent.log" &
PIDS="$! $PIDS"
AGENT_PID=$!
running() { "$AGENT" -c "$CFG" status --json | grep -q '"running":[[:space:]]*true'; }
wait_for 15 running

say "labshare-agent record (a paper log entered late)"
"$AGENT" -c "$CFG" record --instrument SX-INS-000456 --start "$D2 18:00" --end "$D2 19:30" \
	--user sun --org 太原理工大学 --samples 1 --note "paper log p.12"

# Everything read and delivered: sessions sealed, the daily records of the closed days of all
# three instruments (the metered one's last day closes once its meter's stretch is decided), all acked.
caught_up() {
	"$AGENT" -c "$CFG" status --json >"$DIR/status.json" &&
	grep -q '"pending":[[:space:]]*0,' "$DIR/status.json" &&
	[ "$("$AGENT" -c "$CFG" report --from "$D1" --to "$D2" --format json |
		grep -c '"date":[[:space:]]*"'"$D2"'"')" -ge 3 ]
}
wait_for 60 caught_up
say "labshare-agent flush"
"$AGENT" -c "$CFG" flush

say "labshare-agent status"
"$AGENT" -c "$CFG" status

say "labshare-agent report --from $D1 --to $D2 (CSV)"
"$AGENT" -c "$CFG" report --from "$D1" --to "$D2"
"$AGENT" -c "$CFG" report --from "$D1" --to "$D2" --format html -o "$DIR/report.html" 2>/dev/null &&
	echo "(HTML report with charts: $DIR/report.html)" || true

say "stop, and labshare-agent verify"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
"$AGENT" -c "$CFG" verify
say "labshare-agent verify --remote (the chain against the platform's acknowledged copy)"
"$AGENT" -c "$CFG" verify --remote
say "the platform holds"
sqlite3 "$DIR/platform.db" "SELECT COUNT(*) || ' records, seq ' || MIN(seq) || '..' || MAX(seq) FROM records"
echo "demo files kept in $DIR"
