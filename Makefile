# make test: vet and every test, race detector on, against a local broker.
# make demo: the Arith example end to end through the broker.
# Both start (or install, as root) RabbitMQ on 127.0.0.1:5672 first.

GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: test demo broker vet

broker:
	@scripts/ensure-broker.sh

vet:
	$(GO) vet ./...

test: broker vet
	$(GO) test -race -count=1 -timeout 15m ./...

demo: broker
	@mkdir -p bin
	$(GO) build -o bin/arith-server ./examples/arith/server
	$(GO) build -o bin/arith-client ./examples/arith/client
	@bin/arith-server & server=$$!; \
	  trap 'kill -TERM $$server 2>/dev/null; wait $$server' EXIT; \
	  bin/arith-client
