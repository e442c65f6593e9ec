#!/usr/bin/env bash
# compare-fs.sh measures weft's file system against MooseFS on the same
# machine in one run: the benchmark table of the file-system issue.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/compare-fs.sh

Starts a weft cluster (`weft up`: 3 nodes on 127.0.0.1-3, replication 3,
the container mounted with FUSE) and a MooseFS cluster (master and 3
chunkservers on loopback, goal 3, mfsmount) with the peer kit's scripts,
then runs ROUNDS rounds, rotating the order of the three columns:
  weft FUSE     the peer kit's fio-suite.sh on the weft mount
  MooseFS FUSE  the same suite on the MooseFS mount
  weft native   the same jobs through the native client: weft bench
                weft://.../default (4k random read and write at iodepth 1
                and 32, 1 MiB sequential read and write at iodepth 8) and
                weft metabench weft://.../default (create, stat and unlink
                of NFILES files); native writes are durable when they
                complete, so the suite's write+fsync row has no native
                figure
It prints the medians as one markdown table (the kit's fio-parse.py
--compare), then the issue's target ratios.

Environment:
  DIR      working directory (default /var/tmp/weft-compare-fs): weft's
           devices, MooseFS's chunk folders and the results (kept)
  SIZE     the suite's file size (default 1g)
  RUNTIME  seconds measured per data job (default 10)
  RAMP     seconds of ramp before each data job (default 2)
  NFILES   files of the metadata test (default 10000)
  ROUNDS   rounds (default 3)
  PEERS    the peer kit (default ../shared/peers beside the checkout)
  PORT     weft's port on 127.0.0.1-3 (default 7270)

Needs root, fio, fuse3, python3, gcc and MooseFS (apt-get install -y fio
fuse3 moosefs-master moosefs-chunkserver moosefs-client gcc python3).
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=${DIR:-/var/tmp/weft-compare-fs}
SIZE=${SIZE:-1g}
RUNTIME=${RUNTIME:-10}
RAMP=${RAMP:-2}
NFILES=${NFILES:-10000}
ROUNDS=${ROUNDS:-3}
PEERS=${PEERS:-$(pwd)/../shared/peers}
PORT=${PORT:-7270}
export SIZE RUNTIME RAMP NFILES

if [ "$(id -u)" != 0 ]; then
	echo "compare-fs.sh: run it as root (both file systems are mounted with FUSE, and MooseFS runs as root)" >&2
	exit 1
fi
for f in fio-suite.sh fio-parse.py moosefs-up.sh moosefs-down.sh; do
	if [ ! -x "$PEERS/$f" ] && [ ! -f "$PEERS/$f" ]; then
		echo "compare-fs.sh: the peer kit has no $f in $PEERS (set PEERS)" >&2
		exit 1
	fi
done
for tool in fio fusermount3 mfsmaster mfschunkserver mfsmount python3 gcc; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "compare-fs.sh: $tool is not on PATH (see --help for the packages)" >&2
		exit 1
	fi
done

. bench/lib.sh
go build -o bin/weft ./tools/weft
WEFT=$(pwd)/bin/weft

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
RES=$DIR/results.$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$RES"
UPPID=
cleanup() {
	"$PEERS/moosefs-down.sh" "$DIR/mfs" >/dev/null 2>&1 || true
	if [ -n "$UPPID" ]; then
		kill -INT "$UPPID" 2>/dev/null || true
		wait "$UPPID" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# weft: a fresh cluster every run, so that both systems start empty.
rm -rf "$DIR/weft"
mkdir -p "$DIR/weft-mnt"
"$WEFT" up --dir "$DIR/weft" --size 8g --port "$PORT" --mount "$DIR/weft-mnt" >"$DIR/weft-up.log" 2>&1 &
UPPID=$!
for _ in $(seq 1 180); do
	if grep -q "is serving" "$DIR/weft-up.log" && mountpoint -q "$DIR/weft-mnt"; then break; fi
	if ! kill -0 "$UPPID" 2>/dev/null; then
		echo "compare-fs.sh: weft up exited:" >&2
		tail -n 20 "$DIR/weft-up.log" >&2
		exit 1
	fi
	sleep 1
done
mountpoint -q "$DIR/weft-mnt" || {
	echo "compare-fs.sh: the weft mount did not come up:" >&2
	tail -n 20 "$DIR/weft-up.log" >&2
	exit 1
}
export WEFT_CLUSTER_ID=weft-local WEFT_KEY_ID=admin
WEFT_KEY_SECRET=$(awk '$1 == "admin" {print $2}' "$DIR/weft/keys")
export WEFT_KEY_SECRET
NATIVE="weft://127.0.0.1:$PORT,127.0.0.2:$PORT,127.0.0.3:$PORT/default"

# MooseFS: fresh as well.
rm -rf "$DIR/mfs"
"$PEERS/moosefs-up.sh" "$DIR/mfs" >/dev/null

# native OUT runs the suite's jobs through the native client, writing
# what fio-suite.sh writes (one fio-shaped JSON per job, meta.json,
# modes.tsv), then the summary.json of fio-parse.py.
native() {
	local out=$1 name
	mkdir -p "$out"
	: >"$out/modes.tsv"
	# The file is laid out once per round (like the suite's layout job);
	# the reading jobs then read it (weft_layout=0).
	local common=(--size="$SIZE" --weft_inode=$((1000 + round)) --output-format=json --lat_percentiles=1)
	"$WEFT" bench --name=layout --rw=write --bs=1m --iodepth=8 "${common[@]}" "$NATIVE" >"$out/layout.json" 2>"$out/layout.err" || {
		echo "  [native layout] failed: $(tail -n 3 "$out/layout.err" | tr '\n' ' ')" >&2
		return 0
	}
	local T=(--time_based --runtime="${RUNTIME}s" --ramp_time="${RAMP}s" --weft_layout=0)
	while read -r name args; do
		# shellcheck disable=SC2086 # args are words
		if "$WEFT" bench --name="$name" $args "${T[@]}" "${common[@]}" "$NATIVE" >"$out/$name.json" 2>"$out/$name.err"; then
			printf '%s\tnative\n' "$name" >>"$out/modes.tsv"
		else
			printf '%s\tFAILED\n' "$name" >>"$out/modes.tsv"
			echo "  [native $name] failed: $(tail -n 3 "$out/$name.err" | tr '\n' ' ')" >&2
		fi
	done <<-JOBS
		randread-4k-qd1 --rw=randread --bs=4k --iodepth=1
		randread-4k-qd32 --rw=randread --bs=4k --iodepth=32
		randwrite-4k-qd1 --rw=randwrite --bs=4k --iodepth=1
		randwrite-4k-qd32 --rw=randwrite --bs=4k --iodepth=32
		seqread-1m-qd8 --rw=read --bs=1m --iodepth=8
		seqwrite-1m-qd8 --rw=write --bs=1m --iodepth=8
	JOBS
	printf 'randwrite-4k-qd1-fsync\tn/a (native writes are durable: see randwrite 4k QD1)\n' >>"$out/modes.tsv"
	if "$WEFT" metabench --files="$NFILES" --json="$out/meta.json" "$NATIVE" >"$out/meta.err" 2>&1; then
		printf 'meta\tok\n' >>"$out/modes.tsv"
	else
		printf 'meta\tFAILED\n' >>"$out/modes.tsv"
		echo "  [native meta] failed: $(tail -n 3 "$out/meta.err" | tr '\n' ' ')" >&2
	fi
	python3 "$PEERS/fio-parse.py" --label "weft native" --fs weft-native --summary "$out/summary.json" "$out" >&2
}

suite() {
	local col=$1 out=$2
	case $col in
	weft) OUTDIR=$out "$PEERS/fio-suite.sh" "$DIR/weft-mnt" "weft FUSE" >&2 ;;
	mfs) OUTDIR=$out "$PEERS/fio-suite.sh" "$DIR/mfs/mnt" "MooseFS FUSE" >&2 ;;
	native) native "$out" ;;
	esac
}

cols=(weft mfs native)
for round in $(seq 1 "$ROUNDS"); do
	for i in 0 1 2; do
		col=${cols[$(((i + round - 1) % 3))]}
		echo "== round $round: $col ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
		suite "$col" "$RES/$round-$col"
	done
done

join() { local c=$1 r s=""; for r in $(seq 1 "$ROUNDS"); do s="$s${s:+,}$RES/$r-$c/summary.json"; done; echo "$s"; }
{
	echo "compare-fs.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD), SIZE=$SIZE RUNTIME=$RUNTIME RAMP=$RAMP NFILES=$NFILES, medians of $ROUNDS rounds; cells: IOPS, ops/s or MiB/s (p50 / p99 µs)"
	echo
	python3 "$PEERS/fio-parse.py" --compare "weft FUSE=$(join weft)" "MooseFS FUSE=$(join mfs)" "weft native=$(join native)"
	echo
	python3 - "$(join weft)" "$(join mfs)" "$(join native)" <<-'PY'
		import json, statistics, sys
		def med(files, key):
		    xs = []
		    for f in files.split(","):
		        for r in json.load(open(f))["rows"]:
		            if r["key"] == key and r["vals"] and r["vals"].get("iops") is not None:
		                xs.append(r["vals"]["iops"])
		    return statistics.median(xs) if xs else None
		weft, mfs, nat = sys.argv[1:4]
		print("| target | measure | weft | MooseFS | ratio | goal |")
		print("|---|---|---:|---:|---:|---:|")
		rows = [("FUSE metadata", k, weft, 2.0) for k in ("mdc", "mds", "mdd")]
		rows += [("FUSE 4k random", k, weft, 1.5) for k in ("rr1", "rr32", "rw1", "rw32")]
		rows += [("native vs MooseFS FUSE", k, nat, 3.0) for k in ("mdc", "mds", "mdd", "rr1", "rr32", "rw1", "rw32")]
		names = {"mdc": "create/s", "mds": "stat/s", "mdd": "unlink/s", "rr1": "randread QD1 IOPS",
		         "rr32": "randread QD32 IOPS", "rw1": "randwrite QD1 IOPS", "rw32": "randwrite QD32 IOPS"}
		for target, key, files, goal in rows:
		    a, b = med(files, key), med(mfs, key)
		    r = f"{a / b:.2f}" if a and b else "n/a"
		    fa = f"{a:.0f}" if a else "-"
		    fb = f"{b:.0f}" if b else "-"
		    print(f"| {target} | {names[key]} | {fa} | {fb} | {r} | {goal:g} |")
	PY
	echo
	echo "raw results: $RES"
} | tee "$RES/table.md"
