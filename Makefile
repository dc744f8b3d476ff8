GO ?= go

.PHONY: test deps demo bench fmt

# The whole test run from a fresh clone: installs memcached and the Python
# interop clients when missing, then checks formatting, vets and runs every
# test with the race detector.
test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...
	@if [ -f bench/go.mod ]; then echo "cd bench && go vet ./... && go test ./..."; cd bench && $(GO) vet ./... && $(GO) test -timeout 10m ./...; fi

deps:
	@./scripts/install-deps.sh

# Starts three memcached servers (weights 1:2:3) and the example web shop.
demo: deps
	@./scripts/demo.sh

# Side-by-side benchmarks against the peers (see bench/README.md).
bench: deps
	cd bench && $(GO) run .

fmt:
	gofmt -w $$(git ls-files '*.go')
