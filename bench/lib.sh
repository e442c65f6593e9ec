# lib.sh holds the shell functions the bench scripts share. Source it
# after cd'ing to the repository root; it runs nothing by itself.

# bytes_of SIZE prints the bytes of an fio-style size (512m, 1g).
bytes_of() { numfmt --from=iec "$(echo "$1" | tr 'a-z' 'A-Z')"; }

# median prints the median of the numbers on stdin. An even count gives
# the mean of the middle two: rounded down to an integer, or with two
# decimals when the first argument is "decimal".
median() {
	sort -g | awk -v decimal="${1:-}" '{a[NR]=$1} END {
		if (NR%2) print a[(NR+1)/2]
		else if (decimal == "decimal") printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2
		else print int((a[NR/2]+a[NR/2+1])/2)
	}'
}

# ratio A B prints A/B with two decimals, or n/a when B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

# start_node SCRIPT WEFT DEVICE SIZE ADDR MODE starts `WEFT node` with one
# reactor in MODE on DEVICE (SIZE bytes), serving container 1 on ADDR
# under a fresh key (exported as WEFT_KEY_ID/WEFT_KEY_SECRET for the bench
# client), logging to $WORK/node.log. It sets NODEPID and returns once the
# node serves; if the node exits first, it prints the log, naming SCRIPT,
# and exits. NODE_FLAGS adds flags (e.g. --conns=goroutines). stop_node
# stops it.
start_node() {
	local script=$1 weft=$2 device=$3 size=$4 addr=$5 mode=$6 secret extra
	read -r -a extra <<<"${NODE_FLAGS:-}"
	secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	echo "bench $secret" >"$WORK/keys"
	export WEFT_CLUSTER_ID=bench WEFT_KEY_ID=bench WEFT_KEY_SECRET=$secret
	"$weft" node --device="$device" --size="$size" --listen="$addr" --shards=1 --mode="$mode" \
		--cluster-id=bench --keys-file="$WORK/keys" --container=1 "${extra[@]}" 2>"$WORK/node.log" &
	NODEPID=$!
	for _ in $(seq 1 100); do
		if grep -q "node: serving" "$WORK/node.log" 2>/dev/null; then return 0; fi
		if ! kill -0 "$NODEPID" 2>/dev/null; then
			echo "$script: weft node exited:" >&2
			cat "$WORK/node.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

# stop_node stops the node start_node started, if any, and waits for it.
stop_node() {
	if [ -n "${NODEPID:-}" ]; then
		kill -TERM "$NODEPID" 2>/dev/null || true
		wait "$NODEPID" 2>/dev/null || true
	fi
}

# Metrics from fio-shaped JSON (fio's, or weft bench's) on stdin: IOPS and
# MiB/s of direction $1, and percentiles of the total latency (lat_ns: the
# jobs must run with --lat_percentiles=1) in whole microseconds. Total,
# not clat: fio's io_uring clat starts after the submitting system call,
# in which the kernel already issued a direct I/O (about 40 µs of a 4 KiB
# read here), while weft's clat starts when its submission is queued.
# p50sync adds fio's fdatasync p50 to the write's, for a write+fdatasync
# baseline.
iops() { jq -r "[.jobs[0].$1.iops] | add | floor"; }
mibs() { jq -r ".jobs[0].$1.bw / 1024 | floor"; }
p50() { jq -r ".jobs[0].$1.lat_ns.percentile[\"50.000000\"] / 1000 | floor"; }
p99() { jq -r ".jobs[0].$1.lat_ns.percentile[\"99.000000\"] / 1000 | floor"; }
p50sync() { jq -r "(.jobs[0].write.lat_ns.percentile[\"50.000000\"] + (.jobs[0].sync.lat_ns.percentile[\"50.000000\"] // 0)) / 1000 | floor"; }
