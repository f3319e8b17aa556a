# wimms — see README.md. Every target works on a machine with only Go
# installed, except image/cluster-* (Docker) and jepsen (root + iptables).
GO        ?= go
BIN       ?= bin/wimms
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BENCHTIME ?= 1s

.PHONY: build run test test-short bench bench-cluster lint jepsen jepsen-long image cluster-up cluster-down cluster-status clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wimms

run:
	$(GO) run ./cmd/wimms server

# The README's test command; .ci/run runs exactly this.
test:
	$(GO) test -count=1 -timeout 28m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./fsm/ ./store/

# End-to-end throughput against a 3-member loopback cluster (see docs/benchmarks.md).
bench-cluster: build
	$(BIN) bench --spawn 3 --bin $(BIN) --workload alloc --clients 64 --duration 20s

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Long chaos runs (root + iptables). CI runs a short one through `make test`.
jepsen: build
	sudo -n true 2>/dev/null || [ "$$(id -u)" = 0 ] || { echo "jepsen needs root (iptables)"; exit 2; }
	$(BIN) jepsen --bin $(BIN) --members 5 --duration 5m --nemesis partition,kill,pause,membership,restart-all,disk-full --clients 16 --out jepsen-out/long

# Offline image: FROM scratch around the static binary (Dockerfile,
# docs/deployment.md). bin/docker-data becomes the image's /data, owned by
# the runtime uid, because scratch has no shell to create it during a build.
image: build
	mkdir -p bin/docker-data
	@if [ -n "$$(ls -A bin/docker-data)" ]; then echo "image: bin/docker-data must stay empty (it becomes /data in the image)"; exit 1; fi
	docker build --build-arg VERSION=$(VERSION) -t wimms:$(VERSION) -t wimms:latest .

# Ports, zones, tokens and the subnet come from the environment (see the
# header of docker-compose.yml); the recipes read the same variables.
cluster-up: image
	docker-compose up -d
	$(BIN) status --http-addr $${WIMMS_PUBLISH_IP:-127.0.0.1}:$${WIMMS1_HTTP_PORT:-18080} --wait 60s

# Keeps the volumes: the next cluster-up resumes with the same data.
cluster-down:
	docker-compose down

# Asks the first member that answers, so it also works while member 1 is down.
cluster-status: build
	@for port in $${WIMMS1_HTTP_PORT:-18080} $${WIMMS2_HTTP_PORT:-18081} $${WIMMS3_HTTP_PORT:-18082}; do \
	  addr=$${WIMMS_PUBLISH_IP:-127.0.0.1}:$$port; \
	  if $(BIN) health --http-addr $$addr >/dev/null 2>&1; then exec $(BIN) status --http-addr $$addr; fi; \
	done; echo "cluster-status: no member answers on the published ports"; exit 1

clean:
	rm -rf bin data jepsen-out
