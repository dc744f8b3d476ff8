GO ?= go

# Every module of the repository: each directory holding a go.mod, found
# anew on each run (testdata excluded), so a new module is vetted and tested
# without an edit here. Modules reach the core through replace lines; a
# developer's go.work must not hide a missing requirement, hence GOWORK=off.
MODULES := $(shell find . -name testdata -prune -o -name .git -prune -o -name go.mod -print | sed 's|/go.mod$$||' | sort)
export GOWORK := off

.PHONY: test deps fmt-check tidy-check core-deps vet unit demo-hangup demo bench fmt

# The whole test run from a fresh clone: installs memcached and the Python
# interop clients when missing, then checks formatting, the core module's
# dependencies and go mod tidy, vets every module (also for macOS and
# Windows), runs every module's tests with the race detector, and checks
# that closing the demo's terminal leaves no process behind.
test: deps fmt-check core-deps tidy-check vet unit demo-hangup

deps:
	@./scripts/install-deps.sh

fmt-check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# The core module needs nothing but securecookie, msgpack, compress and
# testify (and their own dependencies).
core-deps:
	@./scripts/check-core-deps.sh

# go mod tidy would change no go.mod or go.sum.
tidy-check:
	@for m in $(MODULES); do \
		echo "go mod tidy -diff ($$m)"; \
		(cd $$m && $(GO) mod tidy -diff) || exit 1; \
	done

vet:
	@for m in $(MODULES); do \
		for os in linux darwin windows; do \
			echo "GOOS=$$os go vet ./... ($$m)"; \
			(cd $$m && GOOS=$$os $(GO) vet ./...) || exit 1; \
		done; \
	done

# -race everywhere, bench included: its smoke test runs each comparison for
# a handful of operations and takes seconds with the race detector too.
unit:
	@for m in $(MODULES); do \
		echo "go test -race ./... ($$m)"; \
		(cd $$m && $(GO) test -race -timeout 30m ./...) || exit 1; \
	done

demo-hangup:
	@./scripts/test-demo-hangup.sh

# Starts three memcached servers (weights 1:2:3) and the example web shop
# through the demo launcher (examples/demo), which stops them all however
# it ends: Ctrl-C, kill, or a closed terminal.
demo: deps
	@echo "demo: building the demo launcher"
	@cd examples && $(GO) build -o ../bin/demo ./demo
	@cd examples && exec ../bin/demo

# Side-by-side benchmarks against the peers (see bench/README.md).
bench: deps
	cd bench && $(GO) run .

fmt:
	gofmt -w $$(git ls-files '*.go')
