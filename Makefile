# pgnoded — build, test, lint. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       ?= bin
PKG       := github.com/pgnoded/pgnoded
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# grpcnotrace drops grpc's debug tracing (and the html/template it drags in):
# about 3 MiB less resident memory per process.
BUILD_TAGS ?= grpcnotrace
LDFLAGS   := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION)
# Unit and package-level integration tests (the latter skip themselves when not root).
UNIT_PKGS  = $(shell $(GO) list ./internal/... ./cmd/... ./tools/... 2>/dev/null)

.PHONY: all build test test-unit test-integration lint deps bench bench-failsafe chaos clean fuzz-run

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(BUILD_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## test: everything CI runs — installs missing system packages when root, then unit tests
## with the race detector and the integration tests against real postgres/etcd/HAProxy.
test: deps lint test-unit test-integration

deps:
	@bash scripts/ensure-deps.sh

test-unit:
	$(GO) test -race -count=1 -timeout 15m $(UNIT_PKGS)
	@$(MAKE) --no-print-directory fuzz-short

## fuzz-short / fuzz: every fuzz target (the config loader, the /config check, every REST
## body) for FUZZ_SHORT each in `make test` (a count of inputs, not a duration: a duration shorter than the
## baseline-coverage pass ends in a spurious "context deadline exceeded"), FUZZTIME each in `make fuzz`.
## The seed corpus is committed under each package's testdata/fuzz; a failing input is
## written there too (commit it with the fix).
FUZZ_TARGETS = internal/config:FuzzLoad internal/config:FuzzCheckDynamic internal/ha:FuzzPatchConfig \
  internal/restapi:FuzzSwitchoverBody internal/restapi:FuzzFailoverBody internal/restapi:FuzzRestartBody \
  internal/restapi:FuzzReinitializeBody internal/restapi:FuzzPatchConfigBody internal/restapi:FuzzFailsafeBody
FUZZ_SHORT ?= 500x
FUZZTIME   ?= 2m
.PHONY: fuzz fuzz-short
fuzz-short:
	@$(MAKE) --no-print-directory fuzz-run FUZZ_FOR=$(FUZZ_SHORT)
fuzz:
	@$(MAKE) --no-print-directory fuzz-run FUZZ_FOR=$(FUZZTIME)
fuzz-run:
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t#*:}; \
	  echo "fuzz $$fn ($(FUZZ_FOR))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_FOR) -fuzzminimizetime 10s ./$$pkg/; \
	done

test-integration: build
	@if [ -n "$$(ls test/*.go 2>/dev/null)" ]; then \
	  PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded $(GO) test -count=1 -tags integration -timeout 45m ./test/...; \
	else echo "no integration tests yet"; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@bash scripts/check-deps.sh

## bench: one table of pgnoded's figures -- bootstrap, unplanned failover per fault kind,
## planned switchover, REST API req/s and p99, metrics scrape, footprint -- each with
## min/median/max over BENCH_RUNS runs (default 3), the settings, the machine and the
## commands (root: real postgres and etcd). Raw output in $(BIN)/bench.out, the table also
## in $(BIN)/bench.md. Timings are measured and printed, never asserted. About 12 minutes.
BENCH_RUNS ?= 3
bench: build
	@out=$(BIN)/bench.out; : > $$out; \
	export PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded PGNODED_BENCH_RUNS=$(BENCH_RUNS); \
	q() { for a; do case $$a in *[!A-Za-z0-9_./=:-]*) printf "'%s' " "$$a";; *) printf '%s ' "$$a";; esac; done; }; \
	run() { echo "### CMD: $$(q "$$@")" | tee -a $$out; "$$@" >>$$out 2>&1 || echo "### FAILED (exit $$?): $$(q "$$@")" | tee -a $$out; }; \
	run $(GO) test -tags integration -count=1 -timeout 90m -run '^$$' -benchtime 1x \
	  -bench '^Benchmark(BootstrapThreeNodes|FailoverNodeLoss|FailoverPostgresCrash)$$' ./test/; \
	sw=$$(sed -n 's/^func \(Benchmark[A-Za-z0-9_]*Switchover[A-Za-z0-9_]*\)(.*/\1/p' test/*.go | grep -v Sync | paste -sd'|' -); \
	if [ -n "$$sw" ]; then run $(GO) test -tags integration -count=1 -timeout 30m -run '^$$' -benchtime 1x -bench "^($$sw)$$" ./test/; fi; \
	if grep -qs '^func BenchmarkFootprint(' test/*.go; then \
	  run $(GO) test -tags integration -count=$(BENCH_RUNS) -timeout 30m -run '^$$' -benchtime 1x -bench '^BenchmarkFootprint$$' ./test/; fi; \
	run $(GO) test -count=$(BENCH_RUNS) -run '^$$' -bench . ./internal/restapi/; \
	run $(GO) test -count=$(BENCH_RUNS) -run '^$$' -bench ScrapeDefaultSet -benchtime 10x ./internal/exporter/; \
	$(GO) run ./tools/benchtable $$out | tee $(BIN)/bench.md

## bench-patroni: the same scenarios against a real Patroni 3.0.2 cluster (Debian
## package patroni) with the same settings, and pgnoded's matching benchmarks: node-loss failover
## at ttl 3/1/1, 10/2/4, 30/10/10, switchover under load, REST OPTIONS /primary (50 clients),
## footprint, idle CPU with both clusters idling at once (BenchmarkIdlePair), and with
## synchronous_mode on: node-loss failover, switchover under load, commit latency sync vs async; PGNODED_BENCH_RUNS (default BENCH_RUNS) runs each. Root only. Raw output in
## $(BIN)/bench-patroni.out, the side-by-side table in $(BIN)/bench-patroni.md. ~60 minutes.
.PHONY: bench-patroni
bench-patroni: build
	@out=$(BIN)/bench-patroni.out; : > $$out; runs=$${PGNODED_BENCH_RUNS:-$(BENCH_RUNS)}; \
	export PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded PGNODED_BENCH_RUNS=$$runs; \
	q() { for a; do case $$a in *[!A-Za-z0-9_./=:-]*) printf "'%s' " "$$a";; *) printf '%s ' "$$a";; esac; done; }; \
	run() { echo "### CMD: $$(q "$$@")" | tee -a $$out; "$$@" >>$$out 2>&1 || echo "### FAILED (exit $$?): $$(q "$$@")" | tee -a $$out; }; \
	run $(GO) test -tags integration -count=1 -timeout 150m -run '^$$' -benchtime 1x \
	  -bench '^Benchmark(Patroni)?(FailoverNodeLoss|SwitchoverUnderLoad)$$' ./test/; \
	run $(GO) test -tags integration -count=1 -timeout 90m -run '^$$' -benchtime 1x \
	  -bench '^Benchmark(Patroni)?(SyncFailoverNodeLoss|SyncSwitchoverUnderLoad|CommitLatency)$$' ./test/; \
	run $(GO) test -tags integration -count=$$runs -timeout 60m -run '^$$' -benchtime 1x \
	  -bench '^Benchmark(Patroni)?Footprint$$|^BenchmarkIdlePair$$|^Benchmark(Patroni|Pgnoded)RESTPrimary$$' ./test/; \
	run $(GO) test -count=$$runs -run '^$$' -bench '^BenchmarkOptionsPrimary$$/^closed-loop$$' ./internal/restapi/; \
	$(GO) run ./tools/sidebyside $$out | tee $(BIN)/bench-patroni.md

## bench-failsafe: etcd frozen 40 s, failsafe_mode on and off, at
## ttl 30/10/10 and 10/2/4, BENCH_RUNS runs each on fresh namespace topologies; prints the
## longest write outage per run (also in $(BIN)/bench-failsafe.out). Root only, ~20 minutes.
bench-failsafe: build
	@mkdir -p $(BIN); PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded PGNODED_BENCH_RUNS=$(BENCH_RUNS) \
	  $(GO) test -tags integration -count=1 -timeout 90m -run '^$$' -benchtime 1x \
	  -bench '^BenchmarkFailsafeEtcdFrozen$$' ./test/ 2>&1 | tee $(BIN)/bench-failsafe.out

## soak: root only, never in `make test`. A 3-node cluster at its lowest working ttl
## (pgnoded 3/1/1 under deploy/systemd/pgnoded.service's scheduling settings, Patroni 3.0.2 at
## 5/1/2) for SOAK_MINUTES each while stress-ng loads every core, pgbench the primary and an
## fsync storm the postgres and etcd disks; nothing is killed. Prints per daemon and ttl: leader
## changes (per hour), demotions, moments with no writable primary, the longest write outage,
## lost rows, etcd's fsync latency and leader changes. SOAK_DAEMONS picks the runs
## (pgnoded, pgnoded-plain = without the unit's settings, patroni); SOAK_ETCD_MEMBERS=3 runs the
## DCS as three etcd processes instead of one embedded member. Installs stress-ng with apt
## when missing. Raw output in $(BIN)/soak.out, the table in $(BIN)/soak.md.
SOAK_MINUTES ?= 30
SOAK_ETCD_MEMBERS ?= 1
SOAK_DAEMONS ?= pgnoded,patroni
.PHONY: soak
soak: build
	@command -v stress-ng >/dev/null 2>&1 || { echo "soak: stress-ng is not installed; installing the Debian package (apt-get install -y stress-ng)"; \
	  apt-get install -y stress-ng >/dev/null || { echo "soak: could not install stress-ng; install it and run make soak again"; exit 1; }; }
	@mkdir -p $(BIN); to=$$(awk 'BEGIN { print int($(SOAK_MINUTES) * 3 + 60) }'); \
	{ PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded PGNODED_SOAK_MINUTES=$(SOAK_MINUTES) PGNODED_SOAK_DAEMONS=$(SOAK_DAEMONS) \
	  PGNODED_SOAK_ETCD_MEMBERS=$(SOAK_ETCD_MEMBERS) \
	  $(GO) test -tags integration -count=1 -timeout $${to}m -run '^$$' -bench '^BenchmarkSoak$$' -benchtime 1x ./test/ 2>&1; \
	  echo $$? > $(BIN)/soak.rc; } | tee $(BIN)/soak.out; \
	sed -n '/^SOAK TABLE/,/^\(PASS\|FAIL\|ok\|goos\)/p' $(BIN)/soak.out | grep -v '^\(PASS\|FAIL\|ok\|goos\)' > $(BIN)/soak.md; \
	exit $$(cat $(BIN)/soak.rc)

## bench-many: MANY_CLUSTERS clusters x 3 pgnoded on one 3-member etcd (root only):
## etcd's unary requests, stream messages, raft proposals and bytes per member per minute (idle
## with one cluster, idle with all, during a failover), and one cluster's failover time alone
## and with all the others running (median of MANY_RUNS). Kept out of `make bench` (30 postgres
## on 2 cores): ~6 minutes at 10 x 3 and 5 runs (4 at 3 runs). A quick run: MANY_CLUSTERS=3 MANY_RUNS=2
## MANY_IDLE_SECONDS=20 (~3 min). Raw output in $(BIN)/bench-many.out, the table in $(BIN)/bench-many.md.
MANY_CLUSTERS ?= 10
MANY_RUNS ?= 5
MANY_IDLE_SECONDS ?= 60
.PHONY: bench-many
bench-many: build
	@mkdir -p $(BIN); { PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded PGNODED_MANY_CLUSTERS=$(MANY_CLUSTERS) PGNODED_MANY_RUNS=$(MANY_RUNS) \
	  PGNODED_MANY_IDLE_SECONDS=$(MANY_IDLE_SECONDS) $(GO) test -tags integration -count=1 -timeout 90m -run '^$$' \
	  -bench '^BenchmarkManyClusters$$' -benchtime 1x ./test/ 2>&1; echo $$? > $(BIN)/bench-many.rc; } | tee $(BIN)/bench-many.out; \
	sed -n '/^MANY CLUSTERS TABLE/,/^\(PASS\|FAIL\|ok\|goos\)/p' $(BIN)/bench-many.out | grep -v '^\(PASS\|FAIL\|ok\|goos\)' > $(BIN)/bench-many.md; \
	exit $$(cat $(BIN)/bench-many.rc)

## chaos: the full failure suite, root only: every scenario in network namespaces
## (3 etcd + 3 nodes, ttl 10/2/4), then the table (also in $(BIN)/chaos.out). CHAOS_MINUTES
## sets the random-faults scenario (default 2); CHAOS_SEED=N repeats a run's random choices.
CHAOS_MINUTES ?= 2
chaos: build
	@mkdir -p $(BIN); { PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded PGNODED_CHAOS=full PGNODED_CHAOS_MINUTES=$(CHAOS_MINUTES) \
	  PGNODED_CHAOS_SEED=$(CHAOS_SEED) $(GO) test -tags integration -count=1 -v -timeout 60m \
	  -run '^(TestChaosAnalysis|TestChaosCheckerSeesRoguePromotion|TestChaos)$$' ./test/ 2>&1; \
	  echo $$? > $(BIN)/chaos.rc; } | tee $(BIN)/chaos.out; exit $$(cat $(BIN)/chaos.rc)

clean:
	rm -rf $(BIN)

# ---------------------------------------------------------------------------
# Packaging and installation. nfpm is a Go tool pinned in go.mod.
DIST        ?= dist
PKG_VERSION  = $(shell sh deploy/pkg/version.sh)
PKG_ARCH     = $(shell $(GO) env GOARCH)
PREFIX      ?= /usr/local
DESTDIR     ?=
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system

.PHONY: package install test-systemd

## package: dist/pgnoded_<version>-1_<arch>.deb and .rpm (version from git describe,
## sanitised by deploy/pkg/version.sh); the unit is checked with systemd-analyze first.
package: build
	@bash deploy/pkg/verify-units.sh $(BIN)/pgnoded
	@mkdir -p $(DIST) && rm -f $(DIST)/pgnoded_*.deb $(DIST)/pgnoded-*.rpm
	VERSION=$(PKG_VERSION) ARCH=$(PKG_ARCH) $(GO) tool nfpm pkg --config deploy/nfpm.yaml --packager deb --target $(DIST)/
	VERSION=$(PKG_VERSION) ARCH=$(PKG_ARCH) $(GO) tool nfpm pkg --config deploy/nfpm.yaml --packager rpm --target $(DIST)/

## install: source install under $(DESTDIR)$(PREFIX) (default /usr/local); the unit's
## ExecStart points at $(PREFIX)/bin. Existing files in $(SYSCONFDIR)/pgnoded are kept.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/pgnoded \
	  $(DESTDIR)$(PREFIX)/share/pgnoded/patroni.service.d
	install -m 0755 $(BIN)/pgnoded $(BIN)/pgnodectl $(BIN)/pgnoded-fence-guard $(DESTDIR)$(PREFIX)/bin/
	sed 's#/usr/bin/pgnoded#$(PREFIX)/bin/pgnoded#g; s#/etc/pgnoded/#$(SYSCONFDIR)/pgnoded/#g' \
	  deploy/systemd/pgnoded.service > $(DESTDIR)$(UNITDIR)/pgnoded.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/pgnoded.service
	sed 's#/usr/bin/pgnoded#$(PREFIX)/bin/pgnoded#g' deploy/systemd/patroni.service.d/pgnoded.conf \
	  > $(DESTDIR)$(PREFIX)/share/pgnoded/patroni.service.d/pgnoded.conf
	install -m 0644 deploy/pgnoded.example.yml $(DESTDIR)$(PREFIX)/share/pgnoded/pgnoded.example.yml
	@for f in pgnoded.yml:deploy/pgnoded.example.yml pg_exporter.yml:internal/exporter/default_collectors.yml; do \
	  dst=$(DESTDIR)$(SYSCONFDIR)/pgnoded/$${f%%:*}; \
	  if [ -e $$dst ]; then echo "keeping existing $$dst"; \
	  else install -m 0640 $${f#*:} $$dst && echo "installed $$dst"; \
	    if [ -z "$(DESTDIR)" ] && getent group postgres >/dev/null; then chgrp postgres $$dst; fi; fi; \
	done
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed; edit $(SYSCONFDIR)/pgnoded/pgnoded.yml, then: systemctl enable --now pgnoded"

## test-systemd: the .deb and the unit under a real systemd (systemd-nspawn container,
## root only). First run ~1.5 min (debootstrap + postgresql-15, cached in
## /var/tmp/pgnoded-nspawn-cache), then ~30-45 s.
test-systemd: package
	GO=$(GO) bash scripts/test-systemd.sh $$(ls -t $(DIST)/pgnoded_*.deb | head -1)

## demo: build everything and run a live 3-node cluster (etcd + 3 pgnoded/postgres; network
## namespaces and a VIP as root, loopback ports otherwise); Ctrl-C removes everything it made.
## demo-check: the scripted form (healthy cluster, kill -9 failover, rejoin, clean teardown).
.PHONY: demo demo-check demo-build
demo: demo-build
	@$(BIN)/demo

demo-check: demo-build
	$(BIN)/demo --check

demo-build: build
	$(GO) build -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	$(GO) build -o $(BIN)/demo ./tools/demo
