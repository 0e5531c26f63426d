# cairn — build, test, lint, bench, fuzz and demo.
#
# CI calls only `make test` (through .ci/run). Every target runs from the
# repository root and installs what it needs itself.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:
# test runs deps, then lint, then go test, in that order, even under -j.
.NOTPARALLEL:

GO ?= go
# Build tags for every go command (e.g. GO_TAGS=pacific once go-ceph is in).
GO_TAGS ?=
TAGS_FLAG := $(if $(GO_TAGS),-tags '$(GO_TAGS)',)

# Project-local tools, outside the module's dependencies.
TOOLS_BIN := $(CURDIR)/bin/tools
# staticcheck 2026.2.2 is module version v0.8.2 (works with Go 1.26).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_BIN)/staticcheck

# The module's packages, without the git-ignored scratch folder tmp/.
PKGS = $(shell $(GO) list -e ./... | grep -v '^cairn/tmp/')

GO_TEST_TIMEOUT ?= 10m
FUZZTIME ?= 20s
FUZZ_PKGS ?= ./dedup/

# Tests that need root, loop devices, FUSE or mkfs skip when those are
# missing, unless CAIRN_REQUIRE_ALL=1: then they fail. In CI (CI=true) it is
# always 1; elsewhere it defaults to 1 for root (make test installs what the
# tests need) and 0 otherwise; `make test CAIRN_REQUIRE_ALL=0` overrides.
ifneq ($(filter true TRUE 1 yes,$(CI)),)
override CAIRN_REQUIRE_ALL := 1
else ifeq ($(origin CAIRN_REQUIRE_ALL),undefined)
CAIRN_REQUIRE_ALL := $(if $(filter 0,$(shell id -u)),1,0)
endif
export CAIRN_REQUIRE_ALL

.PHONY: all build test test-go deps lint vet fmt-check staticcheck tidy-check \
	layering bench fuzz demo clean help

all: build

help:
	@echo "make build       build bin/cairn"
	@echo "make demo        build, then back up, restore and verify a demo disk image in ./.demo"
	@echo "make test        install test deps, lint, layering check, go test -race ./..."
	@echo "make lint        go vet, gofmt check, staticcheck, go mod tidy check, layering check"
	@echo "make bench       run scripts/bench.sh"
	@echo "make fuzz        run each Fuzz* test in $(FUZZ_PKGS) for FUZZTIME=$(FUZZTIME)"
	@echo "make clean       remove bin/, .demo/ and .bench/"

## build: the one binary.
build:
	$(GO) build $(TAGS_FLAG) -o bin/cairn ./cmd/cairn

## demo: the quick start (local-directory repository, no Ceph/OpenStack).
demo: build
	./scripts/demo.sh

## deps: Debian packages that tests, benchmarks and the demo call.
deps:
	./scripts/install-test-deps.sh

## test: everything CI runs.
test: deps lint test-go

test-go:
	@echo "==> go test -race -count=1 ./... (CAIRN_REQUIRE_ALL=$(CAIRN_REQUIRE_ALL))"
	CGO_ENABLED=1 $(GO) test $(TAGS_FLAG) -race -count=1 -timeout $(GO_TEST_TIMEOUT) $(PKGS)

## lint: static checks only; no test binaries except the layering check.
lint: vet fmt-check staticcheck tidy-check layering

vet:
	@echo "==> go vet"
	$(GO) vet $(TAGS_FLAG) $(PKGS)

# Every .go file in the tree, minus tool output, scratch, the demo and testdata.
GO_FILES_CMD := find . -name '*.go' -type f \
	-not -path './.git/*' -not -path './bin/*' -not -path './tmp/*' -not -path './.demo/*' \
	-not -path './.bench/*' -not -path '*/testdata/*'

fmt-check:
	@echo "==> gofmt check"
	@files=$$($(GO_FILES_CMD) -print0 | xargs -0 -r gofmt -l); \
	if [[ -n "$$files" ]]; then \
		echo "gofmt: these files need formatting (run gofmt -w on them):"; \
		echo "$$files" | sed 's/^/  /'; \
		exit 1; \
	fi

$(STATICCHECK):
	@echo "==> installing staticcheck $(STATICCHECK_VERSION) into $(TOOLS_BIN)"
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

staticcheck: $(STATICCHECK)
	@if ! $(STATICCHECK) -version | grep -qF '($(STATICCHECK_VERSION:v%=%))'; then \
		echo "==> $(STATICCHECK) is not $(STATICCHECK_VERSION); reinstalling"; \
		GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi
	@echo "==> staticcheck $$($(STATICCHECK) -version)"
	$(STATICCHECK) $(TAGS_FLAG) $(PKGS)

# go mod tidy -diff changes nothing on disk and fails with the diff when
# go.mod or go.sum is not tidy.
tidy-check:
	@echo "==> go mod tidy check"
	@if ! $(GO) mod tidy -diff; then \
		echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit the result"; \
		exit 1; \
	fi

# STYLE.md: layers import downward only. The rule table is in
# internal/layering/layering_test.go.
layering:
	@echo "==> layering check"
	$(GO) test $(TAGS_FLAG) -count=1 ./internal/layering

bench:
	./scripts/bench.sh

# Runs each Fuzz* target of each FUZZ_PKGS package for FUZZTIME.
fuzz:
	@for pkg in $(FUZZ_PKGS); do \
		names=$$($(GO) test $(TAGS_FLAG) -list '^Fuzz' $$pkg | grep '^Fuzz' || true); \
		if [[ -z "$$names" ]]; then echo "==> no fuzz tests in $$pkg"; continue; fi; \
		for name in $$names; do \
			echo "==> fuzz $$pkg $$name for $(FUZZTIME)"; \
			$(GO) test $(TAGS_FLAG) -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf bin .demo .bench
