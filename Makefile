# ProxBalance. `make demo` runs the stack on the simulated cluster; `make test` is what CI runs.
GO        ?= go
GOTOOL    := $(GO) tool -modfile=tools/go.mod
BIN       := bin
PKGS      := ./...
TESTFLAGS ?= -race -count=1 -timeout 15m
BENCHTIME ?= 1s

.PHONY: all build test unit lint fmt vet staticcheck deps bench bench-quality demo demo-check clean rules-test rules-test-prometheus3

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: everything CI checks: install external test dependencies, lint, then all tests with the race detector.
test: deps lint unit

unit:
	$(GO) test $(TESTFLAGS) $(PKGS)

deps:
	./scripts/install-deps.sh

## rules-test: promtool's checks and unit tests of the Prometheus rules (also run by `go test ./rules`).
## PROMTOOL=/path/to/promtool tests them with another Prometheus release.
PROMTOOL ?= promtool
rules-test:
	$(PROMTOOL) check rules rules/*.yml
	$(PROMTOOL) test rules rules/tests/*.yml

## rules-test-prometheus3: the same with Prometheus 3's promtool, built from the Go module proxy into
## bin/prometheus3/ (Prometheus 3.N is module version v0.3NN.x). CI does not run it: a first build downloads
## about 1.8 GB of modules and takes about 10 minutes on two cores.
PROMETHEUS3 ?= v0.316.0
rules-test-prometheus3:
	GOBIN=$(abspath $(BIN))/prometheus3 $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS3)
	$(MAKE) rules-test PROMTOOL=$(abspath $(BIN))/prometheus3/promtool

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GOTOOL) staticcheck $(PKGS)

## bench: speed and memory goals, as Go benchmarks (compare runs with `go tool -modfile=tools/go.mod benchstat`),
## then the running exporter's memory after 100 scrapes of the large simulated cluster.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)
	./scripts/bench-rss.sh $(BIN)

## bench-quality: the planner against two peer baselines and a brute-force optimum, as a table.
bench-quality:
	$(GO) test -count=1 -run TestQualityTable -v ./internal/placement
	$(GO) test -run '^$$' -bench 'PlanRebalanceLarge|PlanEvacuateLarge' -benchmem ./internal/placement

## demo: the whole stack on the simulated cluster, on 127.0.0.1 (pve-sim, pve-exporter, Prometheus, Alertmanager,
## pb-balancer serve); prints URLs, tokens and curl examples, runs until Ctrl-C. See docs/demo.md.
demo: build deps
	./scripts/demo.sh

## demo-check: the same stack until an alert has become a plan (about 80s, at most 4 minutes), then stops.
demo-check: build deps
	./scripts/demo.sh --check

clean:
	rm -rf $(BIN) .demo
