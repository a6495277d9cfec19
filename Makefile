# make test: vet, every test with the race detector, and a short run of each
#            fuzz target, against a local broker.
# make demo: the Arith example, then the order example (an order service and
#            four services it calls), end to end through the broker.
# Both start (or install, as root) RabbitMQ on 127.0.0.1:5672 first.

GO ?= go
export PATH := $(PATH):/usr/local/go/bin
FUZZTIME ?= 10s

.PHONY: test demo demo-arith demo-order broker interop-deps vet fuzz soak bench reliability

broker:
	@scripts/ensure-broker.sh

# Python's pika, Node's amqplib and the RabbitMQ Java client for the
# cross-language tests.
interop-deps:
	@scripts/install-interop-deps.sh

vet:
	$(GO) vet ./...
	cd examples/bench && $(GO) vet .

test: broker interop-deps vet
	$(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzServerRequest$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzClientReply$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzGobStream$$' -fuzztime $(FUZZTIME) ./codec
	$(GO) test -run '^$$' -fuzz '^FuzzJSON$$' -fuzztime $(FUZZTIME) ./codec
	$(GO) test -run '^$$' -fuzz '^FuzzGobCache$$' -fuzztime $(FUZZTIME) ./codec
	$(GO) test -run '^$$' -fuzz '^FuzzText$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./codec

demo: demo-arith demo-order

demo-arith: broker
	@mkdir -p bin
	$(GO) build -o bin/arith-server ./examples/arith/server
	$(GO) build -o bin/arith-client ./examples/arith/client
	@bin/arith-server & server=$$!; \
	  trap 'kill -TERM $$server 2>/dev/null; wait $$server' EXIT; \
	  bin/arith-client

# Five services and the demo orders in one process; exits 1 if an order
# does not end as it should.
demo-order: broker
	$(GO) run ./examples/order

# The fault tests and a 60 s soak, as the README's reliability table.
reliability: broker
	scripts/reliability-table.sh

# 64 callers for 60 s; goroutines and heap must stay flat.
soak: broker
	AMQPRPC_SOAK=60s $(GO) test -race -count=1 -run '^TestSoak$$' -v .

# amqprpc against net/rpc over TCP and a raw amqp091-go floor, in one run;
# writes docs/bench.md and docs/bench-throughput.png (about 1.5 min).
bench: broker
	cd examples/bench && $(GO) run . -out ../../docs/bench.md
