#!/usr/bin/env bash
# cpu-per-op.sh measures what a weft:// operation costs in CPU, system
# calls and context switches, on the node and on the bench client, for a
# fixed number of I/Os. Unlike IOPS and latency, these figures move little
# when other work shares the machine, so they show whether a change to the
# RPC path (net, fsproto) made an operation cheaper.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/cpu-per-op.sh

Builds weft into a temporary directory, starts one `weft node` on 127.0.0.1
(one reactor, --mode=interrupt: hybrid and poll spin, which inflates CPU),
lays out SIZE bytes with 4 KiB writes, then runs, ROUNDS times each, a fixed
number of I/Os (one pass over the job's size, not a duration):
  4k randread  qd32  over RR32_SIZE
  4k randread  qd1   over RR1_SIZE
  4k randwrite qd32  over RW32_SIZE
  1m read (sequential) qd4 over SIZE
For every run it counts, with perf stat, the node's and the bench client's
task-clock (CPU time of all threads), context switches and system calls
(raw_syscalls:sys_enter), and divides by the I/Os the bench reports. The
node is counted from just before the bench starts to just after it ends;
the client over its whole life (its start-up is a few ms; the sizes are
chosen so that it is small per operation). Prints a markdown table of the
medians over ROUNDS, with every round's CPU figures.

Environment:
  DIR        directory of the node's device file (default /var/tmp); not tmpfs
  SIZE       bytes laid out and read sequentially (default 512m)
  RR32_SIZE  bytes the randread qd32 job addresses (default 256m: 65536 I/Os)
  RR1_SIZE   bytes the randread qd1 job addresses (default 40m: 10240 I/Os)
  RW32_SIZE  bytes the randwrite qd32 job addresses (default 128m: 32768 I/Os)
  ROUNDS     rounds per workload (default 3)
  PORT       the node's port on 127.0.0.1 (default 17080)
  MODE       the node's polling mode (default interrupt)
  ONLY       run only the workloads whose name contains this (e.g. rr32)
  KEEP       1 keeps the device file afterwards
  NODE_FLAGS extra flags for the node (e.g. --conns=goroutines)

Needs perf (with access to raw_syscalls tracepoints: root, or
perf_event_paranoid <= 1), jq and Go.
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
esac

DIR=${DIR:-/var/tmp}
SIZE=${SIZE:-512m}
RR32_SIZE=${RR32_SIZE:-256m}
RR1_SIZE=${RR1_SIZE:-40m}
RW32_SIZE=${RW32_SIZE:-128m}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-17080}
MODE=${MODE:-interrupt}
ONLY=${ONLY:-}

for tool in perf jq; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "cpu-per-op.sh: $tool is not on PATH" >&2
		exit 1
	fi
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
WORK=$(mktemp -d)
WEFT=$WORK/weft
NODEDEV=$DIR/weft-cpu-per-op-$PORT.dev
NODEPID=
cleanup() {
	stop_node
	if [ "${KEEP:-0}" != 1 ]; then rm -f "$NODEDEV"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# A binary of our own: other people may be rebuilding bin/weft meanwhile.
go build -o "$WEFT" ./tools/weft

# Room for the laid-out data, the randwrite runs' overwrites and the log.
NODESIZE=$(($(bytes_of "$SIZE") * 3))

ADDR=127.0.0.1:$PORT
rm -f "$NODEDEV"
start_node cpu-per-op.sh "$WEFT" "$NODEDEV" "$NODESIZE" "$ADDR" "$MODE"

echo "# CPU, system calls and context switches per weft:// operation"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- kernel: $(uname -srm); $(nproc) CPUs; weft: $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "- node: 1 reactor, --mode=$MODE, device in $DIR; $ROUNDS rounds, medians"

# The reads find 4 KiB records, as in compare-net.sh.
"$WEFT" bench --name=layout --filename="weft://$ADDR/1" --size="$SIZE" --rw=randread --bs=4k --runtime=1s \
	--output-format=json >/dev/null 2>"$WORK/layout.err" || {
	cat "$WORK/layout.err" >&2
	exit 1
}

EVENTS=task-clock,context-switches,raw_syscalls:sys_enter

# stat_field FILE EVENT prints the count of EVENT in perf's CSV output
# (task-clock in ms).
stat_field() { awk -F, -v ev="$2" '$3 == ev || index($3, ev) == 1 { print $1; exit }' "$1"; }

# one NAME BENCH_ARGS...: one run; prints "node_us node_sys node_cs client_us client_sys client_cs ios".
one() {
	local name=$1
	shift
	local nstat=$WORK/node.stat cstat=$WORK/client.stat out=$WORK/out.json
	perf stat -x, -e "$EVENTS" -p "$NODEPID" -o "$nstat" &
	local perfpid=$!
	sleep 0.5 # perf attaches to the node's threads
	if ! perf stat -x, -e "$EVENTS" -o "$cstat" -- "$WEFT" bench --name="$name" --filename="weft://$ADDR/1" \
		--weft_layout=0 --output-format=json "$@" >"$out" 2>"$WORK/bench.err"; then
		kill -INT "$perfpid" 2>/dev/null || true
		wait "$perfpid" 2>/dev/null || true
		cat "$WORK/bench.err" >&2
		exit 1
	fi
	kill -INT "$perfpid"
	wait "$perfpid" 2>/dev/null || true
	local ios
	ios=$(jq -r '[.jobs[0].read.total_ios, .jobs[0].write.total_ios] | add' "$out")
	awk -v ios="$ios" \
		-v nt="$(stat_field "$nstat" task-clock)" -v ns="$(stat_field "$nstat" raw_syscalls:sys_enter)" -v nc="$(stat_field "$nstat" context-switches)" \
		-v ct="$(stat_field "$cstat" task-clock)" -v cs="$(stat_field "$cstat" raw_syscalls:sys_enter)" -v cc="$(stat_field "$cstat" context-switches)" \
		'BEGIN { printf "%.1f %.2f %.2f %.1f %.2f %.2f %d\n", nt*1000/ios, ns/ios, nc/ios, ct*1000/ios, cs/ios, cc/ios, ios }'
}

# The fixed cost of a run (the client's start-up, dial and exit; what the
# node spends meanwhile): one 4 KiB read, counted as the rows are.
if [ -z "$ONLY" ]; then
	read -r b_nt b_ns b_nc b_ct b_cs b_cc _ < <(one fixed --rw=read --bs=4k --size=4k)
	echo "- fixed cost of a run (one 4 KiB read; included in the rows below): node $b_nt µs CPU, $b_ns syscalls, $b_nc ctx sw; client $b_ct µs CPU, $b_cs syscalls, $b_cc ctx sw"
fi

echo
echo "| workload | I/Os | node CPU µs/op | node syscalls/op | node ctx sw/op | client CPU µs/op | client syscalls/op | client ctx sw/op | node CPU rounds | client CPU rounds |"
echo "|---|---|---|---|---|---|---|---|---|---|"

row() {
	local name=$1 title=$2
	shift 2
	if [ -n "$ONLY" ] && [[ $name != *"$ONLY"* ]]; then return; fi
	local rows=()
	for _ in $(seq 1 "$ROUNDS"); do
		rows+=("$(one "$name" "$@")")
	done
	col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{print $c}'; }
	echo "| $title | $(col 7 | median decimal) | $(col 1 | median decimal) | $(col 2 | median decimal) | $(col 3 | median decimal) | $(col 4 | median decimal) | $(col 5 | median decimal) | $(col 6 | median decimal) | $(col 1 | tr '\n' ' ')| $(col 4 | tr '\n' ' ')|"
}

row rr32 "4k randread qd32" --rw=randread --bs=4k --iodepth=32 --size="$RR32_SIZE"
row rr1 "4k randread qd1" --rw=randread --bs=4k --iodepth=1 --size="$RR1_SIZE"
row rw32 "4k randwrite qd32" --rw=randwrite --bs=4k --iodepth=32 --size="$RW32_SIZE"
row seq1m "1m read qd4" --rw=read --bs=1m --iodepth=4 --size="$SIZE"
