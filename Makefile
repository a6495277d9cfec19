# make test: the static checks (make lint), every test with the race
#            detector, and a short run of each fuzz target, against a local
#            broker (and a local Redis and PostgreSQL, for the reply store
#            and the order example).
# make unit: the fast inner loop: the tests that need no broker, no private
#            node and no tool (go test -short), with the race detector, in
#            the library and otelamqprpc; under a minute, and no broker
#            needed. make test runs them too, with everything else.
# make lint: go vet, staticcheck, go mod tidy -diff in every module, and
#            actionlint on the GitHub Actions workflow; needs no broker.
# make demo: the Arith example, then the order example (an order service and
#            four services it calls, payment twice with a reply store on
#            Redis and its charges in PostgreSQL), end to end through the
#            broker.
# test and demo start (or install, as root) RabbitMQ on 127.0.0.1:5672 first,
# Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432.

GO ?= go
export PATH := $(PATH):/usr/local/go/bin
# make fuzz runs each target for a fixed number of inputs, about 10 s each on
# a 2-core machine. A time (-fuzztime 10s) would be simpler, but Go before
# 1.27 can end a timed run with a bare "context deadline exceeded" failure
# (golang/go#75804); a count has no deadline to race. FUZZTIME=1m (or 500000x)
# overrides every target's count.
FUZZTIME ?=
fuzz-budget = $(if $(FUZZTIME),$(FUZZTIME),$(1))

# Every Go module in the repository: the library, the bench program (its
# own module, for gonum/plot), the OpenTelemetry instrumentation, the Redis
# reply store and the order example (each its own module, so that the
# library requires neither OpenTelemetry nor go-redis nor a PostgreSQL
# driver).
MODULES := . examples/bench otelamqprpc redisstore examples/order

# Checkers run through `go run` at pinned versions, so that a machine needs
# only Go: the module proxy supplies them on first use, the build cache keeps
# them after. Change a version here and nowhere else.
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION := v1.7.12
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
ACTIONLINT := $(GO) run github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

.PHONY: test unit lint demo demo-arith demo-order broker redis postgres interop-deps vet staticcheck tidy-check actionlint fuzz soak bench bench-tracing reliability cluster-bench

broker:
	@scripts/ensure-broker.sh

redis:
	@scripts/ensure-redis.sh

postgres:
	@scripts/ensure-postgres.sh

# Python's pika, Node's amqplib and the RabbitMQ Java client for the
# cross-language tests.
interop-deps:
	@scripts/install-interop-deps.sh

lint: vet staticcheck tidy-check actionlint

vet:
	@set -e; for m in $(MODULES); do echo "cd $$m && $(GO) vet ./..."; (cd $$m && $(GO) vet ./...); done

staticcheck:
	@set -e; for m in $(MODULES); do echo "cd $$m && staticcheck ./..."; (cd $$m && $(STATICCHECK) ./...); done

# Fails, printing the diff, when go.mod or go.sum of a module is not what
# `go mod tidy` would make it.
tidy-check:
	@set -e; for m in $(MODULES); do \
	  echo "cd $$m && $(GO) mod tidy -diff"; \
	  (cd $$m && $(GO) mod tidy -diff) || { echo "$$m: not tidy; run go mod tidy there" >&2; exit 1; }; \
	done

# Checks .github/workflows/ (and the shell in its run steps, when shellcheck
# is installed).
actionlint:
	$(ACTIONLINT)

# Tests that need a broker, a private node or a tool skip themselves under
# -short (brokertest.SkipShort), whether or not CI is set.
unit:
	$(GO) test -short -race -timeout 5m ./...
	cd otelamqprpc && $(GO) test -short -race -timeout 5m ./...

test: lint broker redis postgres interop-deps
	$(GO) test -race -count=1 -timeout 15m ./...
	cd otelamqprpc && $(GO) test -race -count=1 -timeout 10m ./...
	cd redisstore && $(GO) test -race -count=1 -timeout 10m ./...
	cd examples/order && $(GO) test -race -count=1 -timeout 10m ./...
	$(MAKE) --no-print-directory fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServerRequest$$' -fuzztime $(call fuzz-budget,120000x) .
	$(GO) test -run '^$$' -fuzz '^FuzzClientReply$$' -fuzztime $(call fuzz-budget,180000x) .
	$(GO) test -run '^$$' -fuzz '^FuzzClientCodec$$' -fuzztime $(call fuzz-budget,6000x) .
	$(GO) test -run '^$$' -fuzz '^FuzzGobStream$$' -fuzztime $(call fuzz-budget,400000x) ./codec
	$(GO) test -run '^$$' -fuzz '^FuzzJSON$$' -fuzztime $(call fuzz-budget,600000x) ./codec
	$(GO) test -run '^$$' -fuzz '^FuzzGobCache$$' -fuzztime $(call fuzz-budget,250000x) ./codec
	$(GO) test -run '^$$' -fuzz '^FuzzText$$' -fuzztime $(call fuzz-budget,450000x) -fuzzminimizetime 1s ./codec

demo: demo-arith demo-order

demo-arith: broker
	@mkdir -p bin
	$(GO) build -o bin/arith-server ./examples/arith/server
	$(GO) build -o bin/arith-client ./examples/arith/client
	@bin/arith-server & server=$$!; \
	  trap 'kill -TERM $$server 2>/dev/null; wait $$server' EXIT; \
	  bin/arith-client

# Five services (payment twice) and the demo orders in one process; exits 1
# if an order does not end as it should.
demo-order: broker redis postgres
	cd examples/order && $(GO) run .

# The fault tests (the cluster ones included) and a 60 s soak, as the
# README's reliability tables.
reliability: broker
	scripts/reliability-table.sh

# Classic against quorum service queues on a private 3-node cluster, both
# reply modes, 10 s each, without the race detector (about 1.5 min);
# docs/CLUSTER.md has the figures.
cluster-bench:
	AMQPRPC_CLUSTER_BENCH=10s $(GO) test -count=1 -run '^TestCluster$$/^throughput$$' -v .

# 64 callers for 60 s; goroutines and heap must stay flat.
soak: broker
	AMQPRPC_SOAK=60s $(GO) test -race -count=1 -run '^TestSoak$$' -v .

# amqprpc against net/rpc over TCP, two raw amqp091-go floors (echo and JSON),
# and with the small payload the no-ack floor, the gob floor and the peer
# (0x4b53/amqp-rpc, required by examples/bench/go.mod alone); issue 19's
# targets; amqprpc with each reply store; and a cost ladder from the echo
# floor up to amqprpc with confirms, in one run; writes docs/bench.md and
# docs/bench-throughput.png (about 4 min).
bench: broker redis
	cd examples/bench && $(GO) run . -out ../../docs/bench.md

# What tracing costs: calls with tracing off and on (otelamqprpc), side by
# side in one run (about 1 min).
bench-tracing: broker
	cd otelamqprpc && $(GO) test -run '^$$' -bench '^BenchmarkCall$$' -v .
