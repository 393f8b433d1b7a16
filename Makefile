# presenced: the two commands a newcomer needs.
#   make up     build the images (from Debian's packages; no registry needed) and bring up
#               the lab Asterisk + Redis + presenced (deploy/compose.yaml)
#   make test   every test: vet, gofmt, unit and integration tests (real Asterisk 22 and Redis
#               in containers, the web app in Debian's chromium, installed when missing) with
#               -race, then every fuzz target briefly. Fails when Docker or the lab cannot be had.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
COMPOSE := docker-compose -f deploy/compose.yaml -p presenced
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: up down logs test images bin lab-image browser vet fuzz

up: images
	$(COMPOSE) up -d
	@echo "presenced: http://127.0.0.1:8080/readyz  (AMI 127.0.0.1:5038, ARI 127.0.0.1:8088, SIP udp 127.0.0.1:5060)"

down:
	$(COMPOSE) down

logs:
	$(COMPOSE) logs -f presenced

bin:
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.commit=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$$(git diff --quiet HEAD 2>/dev/null || echo +dirty)" -o bin/presenced ./cmd/presenced

lab-image:
	bash testdata/lab/build.sh

images: bin lab-image
	docker build -q --target prebuilt -t presenced:latest .

# The web app's browser tests (cmd/presenced/web_test.go) drive Debian's chromium headless:
# installed from Debian's packages, like the lab's Asterisk, when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null; }

vet:
	go vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi

test: lab-image browser vet
	go test $(GO_TEST_FLAGS) -json ./... | go run ./internal/testsummary
	bash testdata/fuzz.sh

# Every fuzz target for FUZZ_TIME each (make test runs 5000 executions of each; e.g. make fuzz FUZZ_TIME=5m).
fuzz:
	bash testdata/fuzz.sh
