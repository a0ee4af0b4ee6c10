# livegate — `make help` lists the targets.
SHELL := /bin/bash
# Go from the official tarball lives here; make it findable on a fresh shell.
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin

LISTEN ?= 127.0.0.1:8080
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help run build test lint unit e2e bench screenshots deps-run deps-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build bin/livegate
	@command -v go >/dev/null || { echo "Go 1.26 or newer is needed: https://go.dev/doc/install (or /usr/local/go)"; exit 1; }
	go build -o bin/livegate ./cmd/livegate

run: deps-run build ## install ffmpeg if missing, build, and run livegate on its built-in receiver
	@echo "livegate: open http://$(LISTEN)/ and press Go live (Ctrl-C stops)"
	./bin/livegate -listen $(LISTEN)

test: deps-test lint ## install what the tests need, then run every test (unit and end to end) with -race
	go test -race -count=1 -timeout 20m ./...

unit: ## only the fast tests (no browsers, no nginx)
	go test -race -count=1 -short ./...

e2e: deps-test ## only the end-to-end tests
	go test -race -count=1 -timeout 20m -v ./e2e/

lint: ## gofmt, go vet, staticcheck, go mod tidy check
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...
	go mod tidy -diff

bench: deps-test ## CPU of one Chromium stream: livegate vs the seed's ffmpeg-per-stream, side by side (60 s)
	LIVEGATE_BENCH_SECONDS=$${LIVEGATE_BENCH_SECONDS:-60} go test -run XXX -bench StreamCPU -benchtime 1x -timeout 15m -v ./e2e/

screenshots: deps-test ## refresh the README's screenshots of the studio page
	LIVEGATE_SCREENSHOT_DIR=$(CURDIR)/docs/img go test -count=1 -run 'TestChromiumToBuiltinReceiver|TestChromiumWatchesBackTheReceiver' ./e2e/

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test
