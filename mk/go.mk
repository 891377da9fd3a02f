# Go binding (bindings/go, cgo): `make test-go` runs its `go test` suite on
# both backends, then again under the race detector (and cgocheck=2).
# Go comes from Debian's golang-go (installed here when `go` is missing;
# Go 1.19 on Debian 12 is enough). No module proxy is used: the package has
# no dependencies outside the standard library.
#   make test-go GO_TEST_ARGS='-run WAL -v'

GO           ?= go
GO_TEST_ARGS ?=
GO_ENV := GOCACHE=$(CURDIR)/target/go/cache GOPATH=$(CURDIR)/target/go/path \
	GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-buildvcs=false GO111MODULE=on CGO_ENABLED=1

TEST_SUITES += test-go

.PHONY: go-toolchain test-go test-go-doc

go-toolchain:
	@if ! command -v $(GO) >/dev/null 2>&1; then \
		echo "go: not found; installing Debian's golang-go"; \
		if [ "$$(id -u)" -ne 0 ]; then echo "go: need root to apt-get install golang-go" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq golang-go >/dev/null; \
	fi
	@$(GO) version

# The binding links -lrio from target/release with an rpath there; the
# loader wants the soname, librio.so.0, next to librio.so.
test-go: lib go-toolchain
	@ln -sf librio.so $(LIBDIR)/librio.so.0
	cd bindings/go && $(GO_ENV) $(GO) vet ./...
	cd bindings/go && $(GO_ENV) $(GO) test -count=1 $(GO_TEST_ARGS) ./...
	cd bindings/go && $(GO_ENV) GODEBUG=cgocheck=2 $(GO) test -count=1 -race $(GO_TEST_ARGS) ./...
	@$(MAKE) -s --no-print-directory test-go-doc

# The Go examples of docs/bindings.md (files, then WAL), each a module of
# its own using the binding through a replace directive, must build and run.
GO_DOC_DIR := $(CURDIR)/target/go/doc-example
test-go-doc: lib go-toolchain
	@rm -rf $(GO_DOC_DIR) && for n in 1 2; do \
		mkdir -p $(GO_DOC_DIR)/$$n && \
		awk -v n=$$n '/^```go$$/{k++; if (k == n) {on = 1; next}} on && /^```$$/{exit} on' \
			docs/bindings.md > $(GO_DOC_DIR)/$$n/main.go && \
		printf 'module example\n\ngo 1.19\n\nrequire librio/bindings/go v0.0.0\n\nreplace librio/bindings/go => %s\n' \
			$(CURDIR)/bindings/go > $(GO_DOC_DIR)/$$n/go.mod || exit 1; \
	done
	@test -z "$$(gofmt -l $(GO_DOC_DIR) bindings/go)" || { echo "not gofmt'd:"; gofmt -l $(GO_DOC_DIR) bindings/go; exit 1; }
	@cd $(GO_DOC_DIR)/1 && $(GO_ENV) $(GO) vet . && $(GO_ENV) $(GO) build -o example . && \
		out=$$(./example) && echo "$$out" && case "$$out" in \
		"read 15 bytes: hello, io_uring (backend "*) echo "docs/bindings.md Go file example: 1 passed, 0 failed" ;; \
		*) echo "docs/bindings.md Go file example: 0 passed, 1 failed"; exit 1 ;; esac
	@cd $(GO_DOC_DIR)/2 && $(GO_ENV) $(GO) vet . && $(GO_ENV) $(GO) build -o example . && \
		out=$$(./example) && echo "$$out" && case "$$out" in \
		"appended 1 to 3"*"3 del k1") echo "docs/bindings.md Go WAL example: 1 passed, 0 failed" ;; \
		*) echo "docs/bindings.md Go WAL example: 0 passed, 1 failed"; exit 1 ;; esac
