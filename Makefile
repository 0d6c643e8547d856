# Switchyard — developer entry points. See README.md.
GO        ?= go
BIN       := bin/switchyard
SANDBOX   ?= ./sandbox-data
BASE_PORT ?= 13306
REPLICAS  ?= 2
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: test-mysql test-race soak test-compat deb all deps bench-deps build run sandbox-up sandbox-down test test-faults unit lint bench bench-failover fuzz clean

all: build

## deps: install MariaDB server and client from Debian (idempotent)
deps:
	@bash scripts/deps.sh

## build: compile bin/switchyard
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/switchyard

## run: the main job — a sandbox (1 master + 2 replicas) and the proxy in front of it
run: deps build
	$(BIN) sandbox up --dir $(SANDBOX) --base-port $(BASE_PORT) --replicas $(REPLICAS)
	$(BIN) run --config $(SANDBOX)/switchyard.yaml

sandbox-up: deps build
	$(BIN) sandbox up --dir $(SANDBOX) --base-port $(BASE_PORT) --replicas $(REPLICAS)

sandbox-down: build
	$(BIN) sandbox down --dir $(SANDBOX)

## lint: gofmt and go vet must be clean
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags faults ./test/chaos/ ./test/transactions/
	$(GO) vet -tags soak ./test/soak/

## test: everything CI runs (installs MariaDB and the MySQL chroot if missing;
##   starts its own servers): every package against MariaDB, then the suites
##   that drive replication and failover again against Oracle MySQL 9.7, one
##   package at a time (three mysqld per package load 2 cores enough)
##   and the driver matrix and transaction suite once more through a -race
##   build of the proxy, with the packages' own tests under -race
MYSQL_SUITES := ./test/failover/ ./test/routing/ ./test/operator/ ./test/transactions/ ./test/clusters/ ./test/rules/
RACE_CI_SUITES := ./test/drivers/ ./test/transactions/
RACE_SUITES := ./test/drivers/ ./test/transactions/ ./test/failover/ ./test/operator/ ./test/proxy/ ./test/clusters/
RACE_UNITS := ./proxy/ ./backend/ ./router/ ./failover/ ./admin/ ./metrics/ ./coord/ ./internal/... ./web/ ./rules/ ./cache/
test: deps lint
	$(GO) test -count=1 -timeout 25m ./...
	SWITCHYARD_TEST_FLAVOR=mysql $(GO) test -count=1 -p 1 -timeout 20m $(MYSQL_SUITES)
	$(GO) test -race -count=1 -timeout 10m $(RACE_UNITS)
	SWITCHYARD_TEST_RACE=1 $(GO) test -count=1 -p 1 -timeout 20m $(RACE_CI_SUITES)

## test-race: the integration suites (drivers, transactions, failover,
##   operator, protocol, clusters) against a -race build of the proxy, and
##   the packages' own tests under -race; a race report fails the test
test-race: deps
	$(GO) test -race -count=1 -timeout 10m $(RACE_UNITS)
	SWITCHYARD_TEST_RACE=1 $(GO) test -count=1 -p 1 -timeout 40m $(RACE_SUITES)

## test-mysql: only the MySQL pass of make test
test-mysql: deps
	SWITCHYARD_TEST_FLAVOR=mysql $(GO) test -count=1 -p 1 -timeout 20m $(MYSQL_SUITES)

## soak: SOAK (30m) of sysbench oltp_read_write, clients connecting and leaving,
##   a switchover every 2 minutes and a RELOAD every minute; prints RSS, goroutines
##   and open fds every minute, which must end within ±10 % of the first minute,
##   and checks that no acknowledged write was lost (not in CI)
SOAK ?= 30m
soak: deps bench-deps
	$(GO) test -tags soak -count=1 -v -timeout 60m -run TestSoak ./test/soak/ -soak $(SOAK)

## unit: tests that need no server
unit:
	$(GO) test -count=1 ./conf/ ./backend/ ./proxy/ ./router/ ./failover/ ./check/ ./admin/ ./metrics/

## test-faults: the long fault suite (chaos loop with consistency checker,
##   2,000-client load test, the bank test through 20 master changes of each kind;
##   the chaos loop again against MySQL)
test-faults: deps
	$(GO) test -tags faults -count=1 -v -timeout 30m ./test/chaos/ ./test/transactions/
	SWITCHYARD_TEST_FLAVOR=mysql $(GO) test -tags faults -count=1 -v -timeout 20m -run TestChaosConsistency ./test/chaos/

## test-compat: MariaDB's main suite (mariadb-test-run --extern) and go-sql-driver's
##   suite, each directly and through the proxy; differences must be explained in
##   docs/mariadb-test-suite.md (about 45 minutes; report in test-artifacts/)
test-compat: deps
	$(GO) test -tags compat -count=1 -v -timeout 120m ./test/compat/

## deb: build dist/switchyard_<version>_<arch>.deb (dpkg-deb, no network)
deb:
	@bash scripts/deb.sh

## bench-deps: install sysbench and haproxy (the L4 relay baseline)
bench-deps:
	@bash scripts/deps.sh bench

## bench: the cost of the proxy (about 10 min; prints, never fails for being slow):
##   1. sysbench point_select, read_write (text protocol) and read_write (prepared
##      statements) at 1/16/64 threads, each direct,
##      through haproxy (mode tcp) and through switchyard: qps, p95/p99, ratios,
##      CPU µs per query, peak RSS; then RSS for a 1M-row stream and 10k idle
##      clients. Results also land in bench-results/, and the ratio table in
##      docs/performance.md (between its bench markers).
##   2. hot-path Go benchmarks with allocs/op (relay, classifier, pool, cluster pick,
##      rules), and sessions in parallel at -cpu 1,2,4,8.
##   3. Go-driver benchmarks, proxy vs direct in the same run.
##   4. instructions per statement in the relay benchmarks (valgrind): a count
##      that, unlike the timings above, a busy machine does not move.
##   BENCH_BEFORE=<commit or binary> measures that switchyard too, in the same
##   rounds (the table's before column; a commit's instruction counts too).
BENCH_TIME ?= 5s
BENCH_ROUNDS ?= 3
BENCH_BEFORE ?=
bench: deps bench-deps
	$(GO) run ./test/bench/sysbench -time $(BENCH_TIME) -rounds $(BENCH_ROUNDS) -markdown docs/performance.md $(if $(BENCH_BEFORE),-before $(BENCH_BEFORE))
	$(GO) test -run '^$$' -bench 'Relay|Classify|PoolCheckoutReturn|ClusterPick|Match' -benchmem ./proxy/ ./router/ ./backend/ ./rules/
	$(GO) test -run '^$$' -bench 'StatementsParallel' -benchmem -cpu 1,2,4,8 ./proxy/
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 1 ./test/bench/
	GO=$(GO) bash scripts/instructions.sh $(BENCH_BEFORE)

## bench-failover: kill -9 the master 5 times under 8 writers for each connection pattern
##   (per worker, a pool, a new connection per write), on MariaDB then MySQL: medians of
##   kill -> first acknowledged write, failed writes, and each failover step
bench-failover: deps
	$(GO) test -run '^$$' -bench BenchmarkFailoverTime -benchtime 1x -timeout 20m ./test/failover/
	SWITCHYARD_TEST_FLAVOR=mysql $(GO) test -run '^$$' -bench BenchmarkFailoverTime -benchtime 1x -timeout 20m ./test/failover/

## fuzz: run every fuzz target for FUZZTIME each (crashers land in testdata/fuzz and become regression tests)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzHandshake$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz '^FuzzWirePackets$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz '^FuzzCommandPackets$$' -fuzztime $(FUZZTIME) ./proxy/
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) ./router/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./conf/

clean:
	rm -rf bin
