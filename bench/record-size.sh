#!/usr/bin/env bash
# record-size.sh measures what the engine's record size (weft node
# --record-size) does to a cluster's 4 KiB random reads of a file written
# sequentially, and to its 1 MiB sequential I/O.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/record-size.sh

Builds weft into a temporary directory. For each round and each record size
in SIZES (the order rotating every round), starts a fresh `weft up` (3
nodes on 127.0.0.1-3, replication 3) with --record-size, and through the
native client (`weft bench weft://.../default`):
  lays out FILE bytes with 1 MiB writes at iodepth 8 (the 1 MiB write row),
  reads them at random, 4 KiB at iodepth 1 and at iodepth 32, RUNTIME each,
  reads them sequentially, 1 MiB at iodepth 8, RUNTIME.
Prints every round's figures and a markdown table of the medians.

Environment:
  DIR      directory of the clusters' devices (default /var/tmp); not tmpfs
  SIZES    record sizes to compare (default "64k 16k 4k")
  FILE     bytes of the file (default 256m)
  RUNTIME  seconds per reading job (default 4)
  ROUNDS   rounds (default 3)
  PORT     the nodes' port (default 17700; metrics on PORT+1)
USAGE
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac

DIR=${DIR:-/var/tmp}
SIZES=${SIZES:-"64k 16k 4k"}
FILE=${FILE:-256m}
RUNTIME=${RUNTIME:-4}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-17700}
for c in jq go; do
	command -v "$c" >/dev/null || { echo "record-size.sh: needs $c" >&2; exit 1; }
done

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(mktemp -d)
WORK="$DIR/weft-record-size.$$"
UPPID=
cleanup() {
	if [ -n "$UPPID" ]; then
		kill -INT "$UPPID" 2>/dev/null || true
		wait "$UPPID" 2>/dev/null || true
	fi
	rm -rf "$BIN" "$WORK"
}
trap cleanup EXIT
(cd "$HERE/.." && go build -o "$BIN/weft" ./tools/weft)
WEFT=$BIN/weft
mkdir -p "$WORK"

# one SIZE appends "SIZE rr1 rr1p50 rr32 w1m r1m" to $results (run in this
# shell, not a subshell, so that cleanup knows the cluster to stop).
one() {
	local rs=$1 d="$WORK/c"
	rm -rf "$d"
	"$WEFT" up --dir "$d" --size 2g --port "$PORT" --record-size "$rs" >"$WORK/up.log" 2>&1 &
	UPPID=$!
	for _ in $(seq 1 120); do
		grep -q "is serving" "$WORK/up.log" && break
		kill -0 "$UPPID" 2>/dev/null || { echo "record-size.sh: weft up exited:" >&2; tail -n 20 "$WORK/up.log" >&2; exit 1; }
		sleep 1
	done
	local keysecret
	keysecret=$(awk '$1 == "admin" {print $2}' "$d/keys")
	local n="weft://127.0.0.1:$PORT,127.0.0.2:$PORT,127.0.0.3:$PORT/default"
	local c=(--size="$FILE" --weft_inode=1001 --output-format=json)
	local t=(--weft_layout=0 --time_based --runtime="${RUNTIME}s")
	export WEFT_CLUSTER_ID=weft-local WEFT_KEY_ID=admin WEFT_KEY_SECRET=$keysecret
	local w1m rr1 rr32 r1m
	w1m=$("$WEFT" bench --name=layout --rw=write --bs=1m --iodepth=8 "${c[@]}" "$n" | jq -r '.jobs[0].write.bw/1024|floor')
	rr1=$("$WEFT" bench --name=rr1 --rw=randread --bs=4k --iodepth=1 "${c[@]}" "${t[@]}" "$n" |
		jq -r '.jobs[0].read | "\(.iops|floor) \(.clat_ns.percentile["50.000000"]/1000|floor)"')
	rr32=$("$WEFT" bench --name=rr32 --rw=randread --bs=4k --iodepth=32 "${c[@]}" "${t[@]}" "$n" | jq -r '.jobs[0].read.iops|floor')
	r1m=$("$WEFT" bench --name=seqread --rw=read --bs=1m --iodepth=8 "${c[@]}" "${t[@]}" "$n" | jq -r '.jobs[0].read.bw/1024|floor')
	kill -INT "$UPPID"
	wait "$UPPID" || true
	UPPID=
	echo "$rs $rr1 $rr32 $w1m $r1m" >>"$results"
	echo "record $rs: randread QD1 $rr1 (IOPS, p50 µs), QD32 $rr32 IOPS, 1 MiB write $w1m MiB/s, read $r1m MiB/s" >&2
}

read -r -a sizes <<<"$SIZES"
results="$WORK/results"
: >"$results"
for r in $(seq 1 "$ROUNDS"); do
	k=$(((r - 1) % ${#sizes[@]}))
	for i in $(seq 0 $((${#sizes[@]} - 1))); do
		rs=${sizes[$(((i + k) % ${#sizes[@]}))]}
		echo -n "round $r: " >&2
		one "$rs"
	done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| record size | 4 KiB randread QD1 IOPS (p50 µs) | randread QD32 IOPS | 1 MiB write MiB/s | 1 MiB read MiB/s |"
echo "|---|---:|---:|---:|---:|"
for rs in "${sizes[@]}"; do
	col() { awk -v rs="$rs" -v f="$1" '$1 == rs {print $f}' "$results" | median; }
	echo "| $rs | $(col 2) ($(col 3)) | $(col 4) | $(col 5) | $(col 6) |"
done
