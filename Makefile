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

lint: ## gofmt, go vet, staticcheck, go mod tidy check, deploy/ manifests
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...
	go mod tidy -diff
	@$(MAKE) --no-print-directory deploy-check

bench: deps-test ## every benchmark of docs/benchmarks.md: browser streams (CPU vs the seed, glass-to-RTMP, A/V sync; 60 s each), then the load ramp
	LIVEGATE_BENCH_SECONDS=$${LIVEGATE_BENCH_SECONDS:-60} go test -run XXX -bench 'StreamCPU|GlassToRTMP|AVSync' -benchtime 1x -timeout 30m -v ./e2e/
	@$(MAKE) --no-print-directory bench-load

screenshots: deps-test ## refresh the README's screenshots of the studio page
	LIVEGATE_SCREENSHOT_DIR=$(CURDIR)/docs/img go test -count=1 -run 'TestChromiumToBuiltinReceiver|TestChromiumWatchesBackTheReceiver|TestStudioStates' ./e2e/

# Tools run with `go run` at a pinned version, never added to go.mod.
KUBECONFORM := github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
KUSTOMIZE := sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
# Offline: the schemas are in the repository (deploy/kubernetes/schemas/generate.go).
KUBECONFORM_FLAGS := -strict -summary -schema-location 'deploy/kubernetes/schemas/{{.ResourceKind}}{{.KindSuffix}}.json'

.PHONY: deploy-check
deploy-check: ## check deploy/: Kubernetes manifests against their schemas, as files and as kustomize builds them; configs, paths, probes
	go run $(KUBECONFORM) $(KUBECONFORM_FLAGS) -skip Kustomization deploy/kubernetes/*.yaml
	set -o pipefail; go run $(KUSTOMIZE) build deploy/kubernetes | go run $(KUBECONFORM) $(KUBECONFORM_FLAGS) -
	go test -count=1 ./deploy/

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

.PHONY: bench-load
bench-load: deps-test build ## streams per machine: livegate against the seed's ffmpeg per stream, ramping to 100 (docs/load.json, docs/img/load.svg)
	go run ./bench/loadgen -livegate bin/livegate -max $${LOAD_MAX:-100} -step $${LOAD_STEP:-10s} \
		-kinds $${LOAD_KINDS:-mkv,fmp4,webcodecs} -json docs/load.json -svg docs/img/load.svg
