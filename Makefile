# weft — see README.md. Every target works on a fresh Debian machine with Go.
GO        ?= go
BIN       := bin/weft
PKGS      := ./...
FUZZTIME  ?= 10s
RUNDIR    ?= /var/tmp
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck

.PHONY: all build run test deps vet race lint fuzz fuzz-short bench compare compare-fs sim clean

all: build

build:
	$(GO) build -o $(BIN) ./tools/weft

# The embedded default: a local cluster (weft up) of 3 nodes on 127.0.0.1-3,
# each a storage node and a manager member, with sparse 8 GiB device files
# under ./.weft and the container "default" replicated 3 ways, mounted with
# FUSE at ./mnt (needs root or fusermount3; made if missing). It prints the
# addresses, a key and what to try next, and runs until Ctrl-C, which
# unmounts ./mnt and stops the nodes; run it again and the same data is back.
run: build
	@mkdir -p mnt
	$(BIN) up --dir .weft --mount ./mnt

# Packages the tests need: fio for the comparison tests, fuse3 for the
# mount tests of later issues. Installed only when missing and when we can.
deps:
	@missing=""; \
	command -v fio >/dev/null 2>&1 || missing="$$missing fio"; \
	command -v fusermount3 >/dev/null 2>&1 || missing="$$missing fuse3"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "warning: missing$$missing and cannot apt-get install them; the tests that need them will skip"; \
		fi; \
	fi

vet:
	$(GO) vet $(PKGS)

# make test = vet + the race-enabled short suite with invariant checks, then
# the suite again without the build tag, as production builds it, then the
# net package's suite with its servers' connections run on a loop
# (net.ServerConfig.Loop, as weft node runs them on its reactors).
test: deps vet
	$(GO) test -race -short -tags invariants -count=1 -timeout 15m $(PKGS)
	$(GO) test -short -count=1 -timeout 15m $(PKGS)
	WEFT_TEST_NET_LOOP=1 $(GO) test -race -short -count=1 -timeout 5m ./net

race:
	GOMAXPROCS=1 $(GO) test -race -short -count=1 $(PKGS)
	GOMAXPROCS=4 $(GO) test -race -short -count=1 $(PKGS)

lint: vet
	@out=$$(gofmt -s -l .); if [ -n "$$out" ]; then echo "gofmt -s needed:"; echo "$$out"; exit 1; fi
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$(STATICCHECK) $(PKGS)

# Every fuzz target, FUZZTIME each (the seed corpora also run in make test).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

fuzz-short:
	$(MAKE) fuzz FUZZTIME=3s

# Micro-benchmarks (0 allocs/op on the ring hot path; RPC round trips;
# engine recovery), then weft bench and the engine against fio. Device
# files go to RUNDIR (a real file system: O_DIRECT).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./ioring ./bench ./net
	WEFT_BENCH_DIR=$(RUNDIR) $(GO) test -run '^$$' -bench 'Index|RandRead' -benchmem -count 3 ./engine
	WEFT_BENCH_DIR=$(RUNDIR) $(GO) test -run '^$$' -bench 'Recovery' -benchtime 3x -count 3 ./engine
	bench/compare-fio.sh
	DIR=$(RUNDIR) bench/compare-engine.sh
	DIR=$(RUNDIR) bench/compare-net.sh

compare: build
	bench/compare-fio.sh
	DIR=$(RUNDIR) bench/compare-engine.sh
	DIR=$(RUNDIR) bench/compare-net.sh

# weft's file system (FUSE and the native client) against MooseFS on this
# machine, with the peer kit in ../shared/peers: needs root and the MooseFS
# packages (bench/compare-fs.sh --help).
compare-fs: build
	DIR=$(RUNDIR)/weft-compare-fs bench/compare-fs.sh

# The deterministic simulation of replication: SIMSEEDS seeds (make test
# runs 100 of them), every one run, the failing ones listed with the
# command replaying each. No seed of 1..3000 is known to fail.
SIMSEEDS ?= 1000
sim:
	$(GO) test -count=1 -timeout 60m -run 'TestSim$$' ./fsproto/replication -sim.seeds=$(SIMSEEDS) -sim.all

clean:
	rm -rf bin
