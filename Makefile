# wimms — see README.md. Every target works on a machine with only Go
# installed, except image/cluster-* (Docker) and jepsen (root + iptables).
GO        ?= go
BIN       ?= bin/wimms
CHAOS_BIN ?= bin/wimms-chaos
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# /__version__ (Dockerflow): commit and build are stamped into the binary;
# CI may set BUILD to the URL of its build.
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X 'main.build=$(BUILD)'
BENCHTIME ?= 1s

.PHONY: build chaos-build run test test-short fuzz bench bench-cluster bench-peers bench-peers-smoke lint jepsen jepsen-long image certs cluster-up cluster-down cluster-status clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wimms

# The chaos build adds the seeded bugs (wimms server --seed-bug,
# --list-seed-bugs) that prove the chaos checker can fail; never deploy it.
chaos-build:
	CGO_ENABLED=0 $(GO) build -tags chaos -trimpath -ldflags '$(LDFLAGS)' -o $(CHAOS_BIN) ./cmd/wimms

run:
	$(GO) run ./cmd/wimms server

# The README's test command; .ci/run runs exactly this.
test:
	$(GO) test -count=1 -timeout 28m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Each fuzz target in turn for FUZZTIME (seeds in */testdata/fuzz).
FUZZTIME ?= 1m
FUZZ_TARGETS := fsm:FuzzDecodeCommand fsm:FuzzRestore store:FuzzSnapshotRestore store:FuzzVerifyEntry \
	httpapi:FuzzParseObject httpapi:FuzzRequestBody cluster:FuzzReadPeersFile cluster:FuzzDecodeMeta cluster:FuzzRelayBatch
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$pkg $$name"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel 2 || exit 1; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./fsm/ ./store/

# End-to-end throughput against a 3-member loopback cluster (see docs/benchmarks.md).
bench-cluster: build
	$(BIN) bench --spawn 3 --bin $(BIN) --workload alloc --clients 64 --duration 20s

# wimms against etcd and MariaDB on the same workloads (docs/benchmarks.md
# "Against peers"). The comparison is a module of its own
# (cmd/internal/benchpeers) so that etcd and the MySQL driver stay out of
# wimms's go.mod; `go test ./...` here does not descend into it. MariaDB is
# skipped with the reason when Debian's mariadbd is not installed.
PEERS_BIN   ?= bin/benchpeers
PEERS_FLAGS ?= -rounds 3 -duration 8s -warmup 2s -clients 64
bench-peers: build
	cd cmd/internal/benchpeers && $(GO) build -trimpath -o $(abspath $(PEERS_BIN)) .
	$(PEERS_BIN) -wimms-bin $(BIN) $(PEERS_FLAGS)

# One round of 2 s: that every system runs, not how fast.
bench-peers-smoke: build
	cd cmd/internal/benchpeers && $(GO) build -trimpath -o $(abspath $(PEERS_BIN)) .
	$(PEERS_BIN) -wimms-bin $(BIN) -short

# What .ci/run checks before the tests.
lint:
	$(GO) mod tidy -diff
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags chaos ./...

# Long chaos runs (root + iptables). CI runs a short one through `make test`.
jepsen: build
	sudo -n true 2>/dev/null || [ "$$(id -u)" = 0 ] || { echo "jepsen needs root (iptables)"; exit 2; }
	$(BIN) jepsen --bin $(BIN) --members 5 --duration 5m --nemesis partition,kill,pause,membership,restart-all,disk-full,tail-damage --clients 16 --out jepsen-out/long

# Offline image: FROM scratch around the static binary (Dockerfile,
# docs/deployment.md). bin/docker-data becomes the image's /data, owned by
# the runtime uid, because scratch has no shell to create it during a build.
# WIMMS_IMAGE is also what docker-compose.yml runs.
WIMMS_IMAGE ?= wimms:latest
export WIMMS_IMAGE
image: build
	mkdir -p bin/docker-data
	@if [ -n "$$(ls -A bin/docker-data)" ]; then echo "image: bin/docker-data must stay empty (it becomes /data in the image)"; exit 1; fi
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t wimms:$(VERSION) -t $(WIMMS_IMAGE) .

# The compose cluster is secured by default (docs/security.md): mutual TLS
# between members, HTTPS API, encrypted gossip, with the CA, member
# certificates and gossip key `make certs` issues into WIMMS_SECRETS_DIR
# (git-ignored, mounted read-only). WIMMS_INSECURE=1 runs it open, for
# development only.
# Absolute: docker-compose v1 takes a relative path without "./" for the
# name of a volume, not a directory.
WIMMS_SECRETS_DIR ?= deploy/secrets
override WIMMS_SECRETS_DIR := $(abspath $(WIMMS_SECRETS_DIR))
export WIMMS_SECRETS_DIR
# Without root, `make certs` leaves the gossip key world-readable so the
# container's uid can read it; members refuse such a file unless told.
WIMMS_ALLOW_READABLE_SECRET_FILES ?= $(shell [ "$$(id -u)" = 0 ] && echo false || echo true)
export WIMMS_ALLOW_READABLE_SECRET_FILES
ifeq ($(WIMMS_INSECURE),1)
COMPOSE  := docker-compose -f docker-compose.yml
TOOL_TLS :=
CERTS    :=
else
COMPOSE  := docker-compose -f docker-compose.yml -f deploy/compose-tls.yml
TOOL_TLS := --tls-ca $(WIMMS_SECRETS_DIR)/ca.pem
CERTS    := certs
endif

# Issues what is missing only: an existing CA is kept (a new one would lock
# the running members out). The CA key stays in WIMMS_CA_DIR, never mounted
# into a container. Each member certificate names its fixed compose IP, its
# service name and loopback (the container's own health probe). The server
# runs as uid 65532 and must read its key: as root the secrets directory is
# handed to that uid (mode 0700); otherwise the keys must be world-readable
# to be readable in the container, which the recipe says.
WIMMS_CA_DIR ?= deploy/ca
certs: build
	@set -e; d=$(WIMMS_SECRETS_DIR); ca=$(WIMMS_CA_DIR); p=$${WIMMS_SUBNET_PREFIX:-10.213.47}; \
	mkdir -p $$d; \
	[ -f $$ca/ca.pem ] || $(BIN) tls ca --out $$ca; \
	cp $$ca/ca.pem $$d/ca.pem; \
	for i in 1 2 3; do \
	  [ -f $$d/wimms$$i.pem ] || $(BIN) tls cert --ca $$ca --role member --name wimms$$i --out $$d \
	    --hosts $$p.1$$i,wimms$$i,localhost,127.0.0.1$${WIMMS_PUBLISH_IP:+,$$WIMMS_PUBLISH_IP}; \
	done; \
	[ -f $$d/gossip.key ] || $(BIN) tls gossip-key --out $$d/gossip.key; \
	if [ "$$(id -u)" = 0 ]; then chown -R 65532:65532 $$d; chmod 0700 $$d; \
	else chmod 0755 $$d; chmod 0644 $$d/*.pem $$d/gossip.key; \
	  echo "certs: not root: keys in $$d made world-readable so the container (uid 65532) can read them; keep this host single-user or run as root"; \
	  echo "certs: the members accept the readable gossip key only with WIMMS_ALLOW_READABLE_SECRET_FILES=true, which the cluster targets set when not root"; fi

# Ports, zones, tokens and the subnet come from the environment (see the
# header of docker-compose.yml); the recipes read the same variables.
cluster-up: image $(CERTS)
	$(COMPOSE) up -d
	$(BIN) status $(TOOL_TLS) --addr $${WIMMS_PUBLISH_IP:-127.0.0.1}:$${WIMMS1_HTTP_PORT:-18080} --wait 120s --members 3

# Keeps the volumes: the next cluster-up resumes with the same data.
cluster-down:
	$(COMPOSE) down

# Asks the first member that answers, so it also works while member 1 is down.
cluster-status: build
	@for port in $${WIMMS1_HTTP_PORT:-18080} $${WIMMS2_HTTP_PORT:-18081} $${WIMMS3_HTTP_PORT:-18082}; do \
	  addr=$${WIMMS_PUBLISH_IP:-127.0.0.1}:$$port; \
	  if $(BIN) health $(TOOL_TLS) --addr $$addr >/dev/null 2>&1; then exec $(BIN) status $(TOOL_TLS) --addr $$addr; fi; \
	done; echo "cluster-status: no member answers on the published ports"; exit 1

clean:
	rm -rf bin data jepsen-out
