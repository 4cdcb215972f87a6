# pgnoded — build, test, lint. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       ?= bin
PKG       := github.com/pgnoded/pgnoded
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X $(PKG)/internal/buildinfo.Version=$(VERSION)
# Unit and package-level integration tests (the latter skip themselves when not root).
UNIT_PKGS  = $(shell $(GO) list ./internal/... ./cmd/... 2>/dev/null)

.PHONY: all build test test-unit test-integration lint deps bench chaos clean

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

## test: everything CI runs — installs missing system packages when root, then unit tests
## with the race detector and the integration tests against real postgres/etcd/HAProxy.
test: deps lint test-unit test-integration

deps:
	@bash scripts/ensure-deps.sh

test-unit:
	$(GO) test -race -count=1 -timeout 15m $(UNIT_PKGS)

test-integration: build
	@if [ -n "$$(ls test/*.go 2>/dev/null)" ]; then \
	  PGNODED_BIN=$(CURDIR)/$(BIN)/pgnoded $(GO) test -count=1 -tags integration -timeout 20m ./test/...; \
	else echo "no integration tests yet"; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@bash scripts/check-deps.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

clean:
	rm -rf $(BIN)
