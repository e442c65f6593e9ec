#!/usr/bin/env bash
# cluster-ab.sh compares two weft binaries on a local cluster (`weft up`,
# three nodes, replication 3) through the native client: 4 KiB random
# reads and writes at iodepth 32 and 1, with the nodes' CPU per operation.
# The rounds alternate the binaries, a fresh cluster each, because this
# VM's noise is larger than most changes: only side-by-side medians say
# whether a change to the cluster path helped.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/cluster-ab.sh A_BINARY [B_BINARY]

For each of ROUNDS rounds and each binary (A first in odd rounds, B first in
even ones): starts `BINARY up` with three nodes on 127.0.0.1-3 at PORT under
a fresh directory, lays out SIZE bytes of one file with 1 MiB writes
(`weft bench weft://...`), then runs for RUNTIME each 4k randread and
randwrite at iodepth 32 and 1 over that file, and counts the three node
processes' CPU time (perf stat task-clock) during each run. Prints a
markdown table: per binary and workload, the median IOPS, p50 latency (µs)
and node CPU per operation (µs), with every round's IOPS. With one binary
it measures that one alone.

Environment:
  DIR       parent directory of the clusters (default /var/tmp); not tmpfs
  SIZE      bytes laid out and addressed (default 256m)
  RUNTIME   duration of each run (default 5s)
  ROUNDS    rounds (default 3)
  PORT      the nodes' port (default 17300; metrics on PORT+1)
  UP_FLAGS  extra flags for `weft up` (e.g. "--mode interrupt")
  ONLY      run only the workloads whose name contains this (rr32, rr1, rw32, rw1)

Needs perf and jq.
USAGE
}

case "${1:-}" in
-h | --help | "")
	usage
	[ -n "${1:-}" ] || exit 2
	exit 0
	;;
esac

DIR=${DIR:-/var/tmp}
SIZE=${SIZE:-256m}
RUNTIME=${RUNTIME:-5s}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-17300}
ONLY=${ONLY:-}
read -r -a UPF <<<"${UP_FLAGS:-}"

for tool in perf jq; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "cluster-ab.sh: $tool is not on PATH (apt-get install -y ${tool/perf/linux-perf})" >&2
		exit 1
	fi
done
bins=("$1")
[ -n "${2:-}" ] && bins+=("$2")
for b in "${bins[@]}"; do
	if [ ! -x "$b" ]; then
		echo "cluster-ab.sh: $b is not an executable weft binary" >&2
		exit 1
	fi
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh

WORK=$(mktemp -d "$DIR/weft-cluster-ab.XXXXXX")
UPPID=
stop_cluster() {
	if [ -n "$UPPID" ]; then
		kill -INT "$UPPID" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$UPPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$UPPID" 2>/dev/null || true
		wait "$UPPID" 2>/dev/null || true
		UPPID=
	fi
	# weft up stops its nodes; one left behind by a killed weft up must
	# not hold the ports of the next round.
	pkill -KILL -f -- "--device $WORK/" 2>/dev/null || true
}
cleanup() {
	stop_cluster
	rm -rf "$WORK"
}
trap cleanup EXIT

# start_cluster BIN: a fresh cluster in $WORK/c, serving, with the admin key
# exported for the bench client.
start_cluster() {
	local bin=$1
	rm -rf "$WORK/c"
	"$bin" up --dir "$WORK/c" --size 2g --port "$PORT" "${UPF[@]}" >"$WORK/up.log" 2>&1 &
	UPPID=$!
	for _ in $(seq 1 300); do
		if grep -q "is serving" "$WORK/up.log" 2>/dev/null; then break; fi
		if ! kill -0 "$UPPID" 2>/dev/null; then
			echo "cluster-ab.sh: $bin up exited:" >&2
			cat "$WORK/up.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	if ! grep -q "is serving" "$WORK/up.log"; then
		echo "cluster-ab.sh: the cluster of $bin did not serve within 60s:" >&2
		cat "$WORK/up.log" >&2
		exit 1
	fi
	export WEFT_CLUSTER_ID=weft-local WEFT_KEY_ID=admin
	WEFT_KEY_SECRET=$(awk '$1=="admin"{print $2}' "$WORK/c/keys")
	export WEFT_KEY_SECRET
	TARGET="weft://127.0.0.1:$PORT,127.0.0.2:$PORT,127.0.0.3:$PORT/default"
}

# run BIN NAME RW QD: one job; prints "IOPS P50_US CPU_US_PER_OP".
run() {
	local bin=$1 name=$2 rw=$3 qd=$4 dir=read pids out cpu iops
	[ "$rw" = randwrite ] && dir=write
	pids=$(pgrep -d, -f -- "--device $WORK/c/")
	perf stat -x, -e task-clock -p "$pids" -o "$WORK/perf" -- sleep "${RUNTIME%s}" >/dev/null 2>&1 &
	local perfpid=$!
	out=$("$bin" bench --name="$name" --rw="$rw" --bs=4k --size="$SIZE" --iodepth="$qd" --runtime="$RUNTIME" \
		--time_based --weft_inode=1001 --weft_layout=0 --lat_percentiles=1 --output-format=json "$TARGET" 2>/dev/null)
	wait "$perfpid" || true
	cpu=$(awk -F, '$3 == "task-clock" {print $1}' "$WORK/perf")
	iops=$(echo "$out" | jq ".jobs[0].$dir.iops | floor")
	echo "$iops $(echo "$out" | jq ".jobs[0].$dir.lat_ns.percentile[\"50.000000\"] / 1000 | floor")" \
		"$(awk -v c="$cpu" -v n="$iops" -v t="${RUNTIME%s}" 'BEGIN { if (n > 0) printf "%d", c * 1000 / (n * t); else print 0 }')"
}

workloads=("rr32 randread 32" "rr1 randread 1" "rw32 randwrite 32" "rw1 randwrite 1")
declare -A res
for r in $(seq 1 "$ROUNDS"); do
	order=("${!bins[@]}")
	if [ $((r % 2)) = 0 ] && [ ${#bins[@]} = 2 ]; then order=(1 0); fi
	for i in "${order[@]}"; do
		bin=${bins[$i]}
		echo "== round $r: ${bin} ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
		start_cluster "$bin"
		"$bin" bench --name=layout --rw=write --bs=1m --size="$SIZE" --iodepth=4 --weft_inode=1001 "$TARGET" >/dev/null 2>&1
		for w in "${workloads[@]}"; do
			read -r name rw qd <<<"$w"
			if [ -n "$ONLY" ] && [[ $name != *"$ONLY"* ]]; then continue; fi
			res[$i,$name]+="$(run "$bin" "$name" "$rw" "$qd");"
		done
		stop_cluster
	done
done

echo "cluster-ab.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): SIZE=$SIZE RUNTIME=$RUNTIME ROUNDS=$ROUNDS${UP_FLAGS:+ UP_FLAGS=\"$UP_FLAGS\"}; medians"
echo
echo "| binary | workload | IOPS | p50 µs | node CPU µs/op | IOPS rounds |"
echo "|---|---|---:|---:|---:|---|"
for i in "${!bins[@]}"; do
	for w in "${workloads[@]}"; do
		read -r name _ _ <<<"$w"
		v=${res[$i,$name]:-}
		[ -n "$v" ] || continue
		col() { echo "$v" | tr ';' '\n' | awk -v k="$1" 'NF {print $k}'; }
		echo "| ${bins[$i]} | $name | $(col 1 | median) | $(col 2 | median) | $(col 3 | median) | $(col 1 | tr '\n' ' ')|"
	done
done
