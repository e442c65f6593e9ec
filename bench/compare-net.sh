#!/usr/bin/env bash
# compare-net.sh measures a weft node on loopback (weft bench weft://)
# against the same engine in-process (weft bench engine:) and fio on a raw
# file of the same file system, rotating which runs first each round, and
# prints a markdown table of medians and ratios: the benchmark table of the
# RPC issue.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/compare-net.sh

Builds bin/weft, starts one `weft node` on 127.0.0.1 (one reactor, hybrid,
like engine: by default), then runs, ROUNDS times each, rotating the order
of fio raw (io_uring, direct), engine: and weft://:
  4k randread  iodepth 1 and 32
  4k randwrite iodepth 1 and 32 (engine and node: every write durable;
               fio: no fsync, its qd1 row adds an fdatasync per write)
  1m read and write, sequential, iodepth 4
and measures the loopback round trip of a 4 KiB call in the same run
(go test -bench BenchmarkRoundTrip4K ./net, median of ROUNDS).

Environment:
  DIR      directory for the files (default /var/tmp); a real file system,
           not tmpfs (O_DIRECT)
  SIZE     bytes each job addresses (default 1g)
  RUNTIME  duration of each run (default 10s)
  ROUNDS   rounds per row (default 3)
  PORT     the node's port on 127.0.0.1 (default 17070)
  KEEP     1 keeps the files afterwards
  NODE_FLAGS extra flags for the node (e.g. --conns=goroutines: its
           connections on goroutines rather than on its reactors)

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
PORT=${PORT:-17070}

for tool in fio jq; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "compare-net.sh: $tool is not on PATH (apt-get install -y $tool)" >&2
		exit 1
	fi
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
go build -o bin/weft ./tools/weft

RAW=$DIR/weft-net-raw.dat
DEV=$DIR/weft-net-engine.dev
NODEDEV=$DIR/weft-net-node.dev
WORK=$(mktemp -d)
NODEPID=
cleanup() {
	stop_node
	if [ "${KEEP:-0}" != 1 ]; then rm -f "$RAW" "$DEV" "$NODEDEV"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# The node's device gets the room engine: gives its own: size plus log
# headroom (twice the data is plenty for overwrites of a laid-out range).
NODESIZE=$(($(bytes_of "$SIZE") * 2))

ADDR=127.0.0.1:$PORT
start_node compare-net.sh bin/weft "$NODEDEV" "$NODESIZE" "$ADDR" hybrid

fio_run() {
	fio --name=cmp --filename="$RAW" --ioengine=io_uring --direct=1 --size="$SIZE" --runtime="$RUNTIME" --time_based --lat_percentiles=1 --output-format=json "$@"
}
engine_run() {
	bin/weft bench --name=cmp --filename="engine:$DEV" --size="$SIZE" --runtime="$RUNTIME" --time_based --lat_percentiles=1 --output-format=json "$@" 2>/dev/null
}
weft_run() {
	bin/weft bench --name=cmp --filename="weft://$ADDR/1" --size="$SIZE" --runtime="$RUNTIME" --time_based --lat_percentiles=1 --output-format=json --weft_layout=0 "$@" 2>/dev/null
}

echo "# weft node on loopback vs the engine in-process vs fio"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- kernel: $(uname -srm); $(nproc) CPUs"
echo "- fio: $(fio --version); weft: $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "- files in $DIR ($(df -T "$DIR" | awk 'NR==2 {print $2}')), size $SIZE, runtime $RUNTIME, $ROUNDS rounds, medians"

# Lay out all three once: fio writes its file in full; engine: lays out its
# device on its first reading job, weft:// on a reading job with layout on,
# both in writes of that job's bs (4k). Both then store 4 KiB records, so a
# 4 KiB read reads one block; the engine verifies whole records (up to 64
# KiB), so data laid out in larger writes costs random 4k reads more.
fio --name=layout --filename="$RAW" --rw=write --bs=1m --size="$SIZE" --direct=1 --ioengine=io_uring >/dev/null
engine_run --rw=randread --bs=4k --runtime=1s >/dev/null
bin/weft bench --name=layout --filename="weft://$ADDR/1" --size="$SIZE" --rw=randread --bs=4k --runtime=1s --output-format=json >/dev/null 2>&1

rtts=()
for _ in $(seq 1 "$ROUNDS"); do
	rtts+=("$(go test -run '^$' -bench 'BenchmarkRoundTrip4K$' -benchtime=2s ./net | awk '/^BenchmarkRoundTrip4K/ {printf "%d", $3 / 1000}')")
done
echo "- loopback round trip of a 4 KiB call (net BenchmarkRoundTrip4K): $(printf '%s\n' "${rtts[@]}" | median) µs median (${rtts[*]})"
echo
echo "| workload | fio | engine | weft:// | weft/engine | weft/fio | fio rounds | engine rounds | weft rounds |"
echo "|---|---|---|---|---|---|---|---|---|"

# row TITLE FIO_METRIC TARGET_METRIC FIO_ARGS -- JOB_ARGS: ROUNDS rounds,
# rotating the order of the three.
row() {
	local title=$1 fmetric=$2 metric=$3
	shift 3
	local fargs=() jargs=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do fargs+=("$1"); shift; done
	shift
	jargs=("$@")
	local f=() e=() w=()
	for r in $(seq 1 "$ROUNDS"); do
		local order=(fio engine weft) i
		for i in 0 1 2; do
			case ${order[$(((i + r) % 3))]} in
			fio) f+=("$(fio_run "${fargs[@]}" | eval "$fmetric")") ;;
			engine) e+=("$(engine_run "${jargs[@]}" | eval "$metric")") ;;
			weft) w+=("$(weft_run "${jargs[@]}" | eval "$metric")") ;;
			esac
		done
	done
	local fm em wm
	fm=$(printf '%s\n' "${f[@]}" | median)
	em=$(printf '%s\n' "${e[@]}" | median)
	wm=$(printf '%s\n' "${w[@]}" | median)
	echo "| $title | $fm | $em | $wm | $(ratio "$wm" "$em") | $(ratio "$wm" "$fm") | ${f[*]} | ${e[*]} | ${w[*]} |"
}

row "4k randread qd32 IOPS" "iops read" "iops read" --rw=randread --bs=4k --iodepth=32 -- --rw=randread --bs=4k --iodepth=32
row "4k randread qd1 p50 µs" "p50 read" "p50 read" --rw=randread --bs=4k --iodepth=1 -- --rw=randread --bs=4k --iodepth=1
row "4k randwrite qd32 IOPS (fio: no fsync)" "iops write" "iops write" --rw=randwrite --bs=4k --iodepth=32 -- --rw=randwrite --bs=4k --iodepth=32
row "4k randwrite qd1 p50 µs (fio: write+fdatasync)" "p50sync" "p50 write" --rw=randwrite --bs=4k --iodepth=1 --fdatasync=1 -- --rw=randwrite --bs=4k --iodepth=1
row "1m read qd4 MiB/s" "mibs read" "mibs read" --rw=read --bs=1m --iodepth=4 -- --rw=read --bs=1m --iodepth=4
row "1m write qd4 MiB/s (fio: no fsync)" "mibs write" "mibs write" --rw=write --bs=1m --iodepth=4 -- --rw=write --bs=1m --iodepth=4
