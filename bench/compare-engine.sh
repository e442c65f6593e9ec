#!/usr/bin/env bash
# compare-engine.sh measures the weft storage engine (weft bench engine:)
# against fio on a raw file of the same file system, alternating which runs
# first each round, and prints markdown tables of medians and ratios: the
# benchmark table of the engine issue.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/compare-engine.sh

Builds bin/weft, then runs, ROUNDS times each, alternating fio and the engine:
  4k randread  iodepth=32   fio raw (io_uring, direct)  vs engine
  4k randwrite iodepth=32   fio raw, no fsync           vs engine (every write durable)
  4k write     iodepth=1    fio + fdatasync after each  vs engine (every write durable)
and 4k randwrite iodepth=32 on an engine device formatted power-loss protected
(no flushes: the log's own cost); the rows that write run on a device
created afresh for each round, with room for the round's writes, so that
the cleaner stays idle (a column counts the segments it cleaned). Then
what the device allows 32 durable 4 KiB writes at once: fio writing
128 KiB at a time with O_DSYNC (one engine group commit's worth). Then the
same three on an engine device filled to 80% with the cleaner running, and
4k randread / write at iodepth=1 under the poll, hybrid and interrupt
reactor modes.

Environment:
  DIR      directory for the files (default /var/tmp); a real file system,
           not tmpfs (O_DIRECT)
  SIZE     bytes each job addresses (default 1g)
  RUNTIME  duration of each run (default 10s)
  ROUNDS   rounds per pair (default 3)
  KEEP     1 keeps the files afterwards

Needs fio 3.x and jq on PATH, and Go to build weft.
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
esac

DIR=${DIR:-/var/tmp}
SIZE=${SIZE:-1g}
RUNTIME=${RUNTIME:-10s}
ROUNDS=${ROUNDS:-3}

for tool in fio jq; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "compare-engine.sh: $tool is not on PATH (apt-get install -y $tool)" >&2
		exit 1
	fi
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
go build -o bin/weft ./tools/weft

RAW=$DIR/weft-cmp-raw.dat
DEV=$DIR/weft-cmp-engine.dev
FULL=$DIR/weft-cmp-engine80.dev
WDEV=$DIR/weft-cmp-engine-w.dev
cleanup() {
	if [ "${KEEP:-0}" != 1 ]; then rm -f "$RAW" "$DEV" "$FULL" "$WDEV"; fi
}
trap cleanup EXIT

# WFILL is the engine_fill of the devices the writing rows get afresh each
# round: room for SIZE plus a round of writes at up to 150k 4 KiB writes a
# second (about twice what the engine does without flushes here), so the
# cleaner has nothing to do while the round runs.
seconds=$(echo "$RUNTIME" | awk '/m$/ {print $0 * 60; next} {print $0 + 0}')
WFILL=$(awk -v size="$(bytes_of "$SIZE")" -v s="$seconds" 'BEGIN {
	f = size / (size + 150000 * 4096 * s); printf "%.3f", (f < 0.05 ? 0.05 : f) }')

common=(--bs=4k --size="$SIZE" --runtime="$RUNTIME" --time_based --lat_percentiles=1 --output-format=json)

# fio_run NAME ARGS... prints fio's JSON.
fio_run() {
	local name=$1
	shift
	fio --name="$name" --filename="$RAW" --ioengine=io_uring --direct=1 "${common[@]}" "$@"
}

# weft_run DEVICE NAME ARGS... prints weft bench's JSON.
weft_run() {
	local dev=$1 name=$2
	shift 2
	bin/weft bench --name="$name" --filename="engine:$dev" "${common[@]}" "$@" 2>/dev/null
}

echo "# weft engine vs fio"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- kernel: $(uname -srm); $(nproc) CPUs"
echo "- fio: $(fio --version); weft: $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "- files in $DIR ($(df -T "$DIR" | awk 'NR==2 {print $2}')), size $SIZE, runtime $RUNTIME, $ROUNDS rounds, medians"
echo

# Lay out the raw file and the engine device once (fio writes the file in
# full; weft bench creates and lays out the device on its first read job).
fio --name=layout --filename="$RAW" --rw=write --bs=1m --size="$SIZE" --direct=1 --ioengine=io_uring >/dev/null
weft_run "$DEV" layout --rw=randread --runtime=1s >/dev/null

# pair TITLE METRIC FIO_JOB_ARGS -- WEFT_JOB_ARGS: ROUNDS alternating runs;
# prints a table row, with the segments the engine's cleaner emptied in
# each round. DEVICE names the engine device (default $DEV); FRESH=1
# deletes it before each engine round, so weft bench creates it anew (the
# creation is not part of the measured run).
pair() {
	local title=$1 metric=$2
	shift 2
	local fargs=() wargs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do fargs+=("$1"); shift; done
	shift
	wargs=("$@")
	local f=() w=() c=() dev=${DEVICE:-$DEV}
	for r in $(seq 1 "$ROUNDS"); do
		local fo wo
		if [ "${FRESH:-0}" = 1 ]; then rm -f "$dev"; fi
		if [ $((r % 2)) = 1 ]; then
			fo=$(fio_run cmp "${fargs[@]}"); wo=$(weft_run "$dev" cmp "${wargs[@]}")
		else
			wo=$(weft_run "$dev" cmp "${wargs[@]}"); fo=$(fio_run cmp "${fargs[@]}")
		fi
		f+=("$(echo "$fo" | eval "$metric")")
		w+=("$(echo "$wo" | eval "${WMETRIC:-$metric}")")
		c+=("$(echo "$wo" | jq -r '.jobs[0].weft_engine.cleaner_segments // "?"')")
	done
	local fm wm
	fm=$(printf '%s\n' "${f[@]}" | median)
	wm=$(printf '%s\n' "${w[@]}" | median)
	echo "| $title | $fm | $wm | $(ratio "$wm" "$fm") | ${f[*]} | ${w[*]} | ${c[*]} |"
}

# dsync_row: fio writing 128 KiB at a time with O_DSYNC at iodepth 1, in
# 4 KiB writes a second: what the device allows 32 durable 4 KiB writes
# in flight when they go down together, as one engine group commit does
# (a 4 KiB fio randwrite at iodepth 32 has the same 128 KiB in flight).
dsync_row() {
	local d=()
	for _ in $(seq 1 "$ROUNDS"); do
		d+=("$(fio --name=dsync --filename="$RAW" --ioengine=io_uring --direct=1 --sync=dsync --rw=randwrite --bs=128k \
			--iodepth=1 --size="$SIZE" --runtime="$RUNTIME" --time_based --output-format=json | jq -r '.jobs[0].write.bw / 4 | floor')")
	done
	echo "| fio 128 KiB O_DSYNC writes at qd1, in 4 KiB writes/s (the device's bound for the durable row) | $(printf '%s\n' "${d[@]}" | median) | | | ${d[*]} | | |"
}

echo "## Engine vs raw device"
echo
echo "The rows that write run on a device created for each round with engine_fill=$WFILL (room for the round's writes)."
echo
echo "| workload | fio | engine | engine/fio | fio rounds | engine rounds | segments cleaned (engine rounds) |"
echo "|---|---|---|---|---|---|---|"
pair "4k randread qd32 IOPS" "iops read" --rw=randread --iodepth=32 -- --rw=randread --iodepth=32
DEVICE=$WDEV FRESH=1 pair "4k randwrite qd32 IOPS (engine durable, fio no fsync)" "iops write" --rw=randwrite --iodepth=32 -- --rw=randwrite --iodepth=32 --engine_fill="$WFILL"
# The same writes made durable on the raw file: an fdatasync after every 32
# (one per queue's worth, as the engine's group commit at best flushes).
DEVICE=$WDEV FRESH=1 pair "4k randwrite qd32 IOPS (both durable: fio fdatasync every 32 writes)" "iops write" --rw=randwrite --iodepth=32 --fdatasync=32 -- --rw=randwrite --iodepth=32 --engine_fill="$WFILL"
dsync_row
DEVICE=$WDEV FRESH=1 WMETRIC="p50 write" pair "4k write qd1 p50 µs (fio: write+fdatasync)" "p50sync" --rw=randwrite --iodepth=1 --fdatasync=1 -- --rw=randwrite --iodepth=1 --engine_fill="$WFILL"
DEVICE=$WDEV FRESH=1 pair "4k randwrite qd32 IOPS, engine device formatted PLP (no flush)" "iops write" --rw=randwrite --iodepth=32 -- --rw=randwrite --iodepth=32 --engine_plp=1 --engine_fill="$WFILL"
echo

echo "## With the cleaner running (engine device 80% full)"
echo
echo "| workload | fio | engine | engine/fio | fio rounds | engine rounds | segments cleaned (engine rounds) |"
echo "|---|---|---|---|---|---|---|"
weft_run "$FULL" layout --rw=randread --runtime=1s --engine_fill=0.8 >/dev/null
DEVICE=$FULL pair "4k randwrite qd32 IOPS" "iops write" --rw=randwrite --iodepth=32 -- --rw=randwrite --iodepth=32 --engine_fill=0.8
DEVICE=$FULL pair "4k randread qd32 IOPS" "iops read" --rw=randread --iodepth=32 -- --rw=randread --iodepth=32 --engine_fill=0.8
DEVICE=$FULL WMETRIC="p50 write" pair "4k write qd1 p50 µs (fio: write+fdatasync)" "p50sync" --rw=randwrite --iodepth=1 --fdatasync=1 -- --rw=randwrite --iodepth=1 --engine_fill=0.8
echo

echo "## Reactor polling modes, iodepth=1 (µs)"
echo
echo "| mode | randread p50 | randread p99 | write p50 | write p99 |"
echo "|---|---|---|---|---|"
for mode in poll hybrid interrupt; do
	rp50=() rp99=() wp50=() wp99=()
	for r in $(seq 1 "$ROUNDS"); do
		o=$(weft_run "$DEV" modes --rw=randread --iodepth=1 --engine_mode=$mode)
		rp50+=("$(echo "$o" | p50 read)") rp99+=("$(echo "$o" | p99 read)")
		o=$(weft_run "$DEV" modes --rw=randwrite --iodepth=1 --engine_mode=$mode)
		wp50+=("$(echo "$o" | p50 write)") wp99+=("$(echo "$o" | p99 write)")
	done
	echo "| $mode | $(printf '%s\n' "${rp50[@]}" | median) | $(printf '%s\n' "${rp99[@]}" | median) | $(printf '%s\n' "${wp50[@]}" | median) | $(printf '%s\n' "${wp99[@]}" | median) |"
done
