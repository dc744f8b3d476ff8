GO ?= go

.PHONY: test deps vet demo bench fmt

# The whole test run from a fresh clone: installs memcached and the Python
# interop clients when missing, then vets and runs every test with -race.
test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -timeout 30m ./...

deps:
	@./scripts/install-deps.sh

fmt:
	gofmt -w $$(git ls-files '*.go')
