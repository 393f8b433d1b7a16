# presenced: the two commands a newcomer needs.
#   make up     build the images (from Debian's packages; no registry needed) and bring up
#               the lab Asterisk + Redis + presenced (deploy/compose.yaml)
#   make test   every test: vet, gofmt, unit and integration tests (real Asterisk 22 and Redis
#               in containers, the web app in Debian's chromium, installed when missing) with
#               -race, promtool on the alert rules and systemd-analyze on the unit (Debian's
#               prometheus and systemd, installed when missing), then every fuzz target briefly.
#               Fails when Docker or the lab cannot be had.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# Compose v2 (the docker plugin) where it is installed, else the standalone docker-compose (v1).
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose) -f deploy/compose.yaml -p presenced
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: up down reset logs test images bin lab-image radicale-image browser tools vet fuzz

up: images
	$(COMPOSE) up -d
	@echo "presenced: http://127.0.0.1:8080/readyz  (AMI 127.0.0.1:5038, ARI 127.0.0.1:8088, SIP udp 127.0.0.1:5060)"

# down keeps the volumes (Asterisk's astdb, Redis's data); reset removes them too.
down:
	$(COMPOSE) down

reset:
	$(COMPOSE) down -v

logs:
	$(COMPOSE) logs -f presenced

COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)

# A static, stripped binary (-s -w), with the commit it was built from (presenced -version).
bin:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.commit=$(COMMIT)" -o bin/presenced ./cmd/presenced
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o bin/presencectl ./cmd/presencectl

lab-image:
	bash testdata/lab/build.sh

# The lab CalDAV server (Debian's radicale) the calendar connector's tests run against.
radicale-image:
	bash testdata/lab/build-radicale.sh

# The image carries this machine's CA bundle (Debian's ca-certificates) for HTTPS webhooks and rediss://.
images: bin lab-image
	cp /etc/ssl/certs/ca-certificates.crt bin/ca-certificates.crt
	docker build -q --target prebuilt --build-arg VERSION=$$(bin/presenced -version | awk '{print $$2}') --build-arg COMMIT=$(COMMIT) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) -t presenced:latest .

# The web app's browser tests (cmd/presenced/web_test.go) drive Debian's chromium headless:
# installed from Debian's packages, like the lab's Asterisk, when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null; }

# What the tests run besides Go, from Debian's packages when missing: curl and openssl (the
# README's examples, which internal/e2e runs), promtool (prometheus: the alert rules in
# deploy/prometheus are checked and unit-tested) and systemd-analyze (systemd: the unit's
# hardening in deploy/systemd).
tools:
	@missing=; \
	for c in curl openssl; do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing for the tests"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing >/dev/null; fi

vet:
	go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

test: lab-image radicale-image browser tools vet
	go test $(GO_TEST_FLAGS) -json ./... | go run ./internal/testsummary
	bash testdata/fuzz.sh

# Every fuzz target for FUZZ_TIME each (make test runs 5000 executions of each; e.g. make fuzz FUZZ_TIME=5m).
fuzz:
	bash testdata/fuzz.sh
