#!/usr/bin/env bash
# compare-fio.sh runs weft bench and fio on the same file with the same
# jobs, alternating between them for several rounds, and prints one markdown
# table of medians per job. Run it from anywhere; it builds bin/weft first.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: bench/compare-fio.sh [extra weft bench flags...]

Builds bin/weft, then compares weft bench against fio (same file, same job,
alternating which runs first each round) on the standard suite:
  4k randread iodepth=32, 4k randread iodepth=1, 4k randwrite iodepth=32,
  128k sequential read iodepth=8
all with --direct=1 --ioengine=io_uring --time_based.

Environment:
  FILE     file both tools run on (default /var/tmp/weft-compare.dat).
           Its contents are overwritten by the write jobs. Use a file on the
           device you want to measure, not on tmpfs (O_DIRECT).
  SIZE     size of the file region used (default 1g)
  RUNTIME  duration of each run (default 10s)
  ROUNDS   rounds per job; each round runs fio once and weft once (default 5)

Extra arguments are passed to every `weft bench` run.
Needs fio (3.x) on PATH and Go to build weft.
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
esac

FILE=${FILE:-/var/tmp/weft-compare.dat}
SIZE=${SIZE:-1g}
RUNTIME=${RUNTIME:-10s}
ROUNDS=${ROUNDS:-5}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v fio >/dev/null 2>&1; then
	echo "compare-fio.sh: fio is not on PATH; install fio 3.x" >&2
	exit 1
fi
mkdir -p "$(dirname "$FILE")"
go build -o bin/weft ./tools/weft

echo "# weft bench vs fio"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- kernel: $(uname -srm)"
echo "- fio: $(fio --version)"
echo "- weft: $(git describe --always --dirty 2>/dev/null || echo unknown)"
echo "- file: $FILE (size $SIZE, runtime $RUNTIME, $ROUNDS rounds)"

run() {
	local title=$1
	shift
	echo
	echo "## $title"
	echo
	bin/weft bench --compare-fio --rounds="$ROUNDS" --direct=1 --ioengine=io_uring \
		--size="$SIZE" --runtime="$RUNTIME" --time_based "$@" "file:$FILE"
}

# "${@+"$@"}" keeps set -u quiet on bash < 4.4 when no extra flags are given.
run "4k random read, iodepth 32" --rw=randread --bs=4k --iodepth=32 ${@+"$@"}
run "4k random read, iodepth 1" --rw=randread --bs=4k --iodepth=1 ${@+"$@"}
run "4k random write, iodepth 32" --rw=randwrite --bs=4k --iodepth=32 ${@+"$@"}
run "128k sequential read, iodepth 8" --rw=read --bs=128k --iodepth=8 ${@+"$@"}
