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
# Build tags for every go command. Code that uses go-ceph (cgo, librados) is
# behind the tag "ceph"; "pacific" selects go-ceph's API for Debian's Ceph 16.
# Both are on when librados' headers are installed (make test's deps step
# installs them). Recursive (=) on purpose: evaluated when a recipe runs,
# after deps, not when make reads this file.
GO_TAGS ?= $(shell test -f /usr/include/rados/librados.h && echo 'ceph pacific')
TAGS_FLAG = $(if $(strip $(GO_TAGS)),-tags '$(strip $(GO_TAGS))',)

# The throwaway Ceph cluster (scripts/ceph-cluster.sh) of make ceph-up/ceph-down.
# make test starts its own in a fresh temporary directory on a free port,
# unless CEPH_CONF names a running cluster already.
CEPH_DIR ?= /tmp/cairn-ceph

# The throwaway Keystone (scripts/keystone.sh) of make keystone-up/keystone-down.
# make test starts its own likewise, unless KEYSTONE_ENV names the keystone.env
# of a running one already.
KEYSTONE_DIR ?= /tmp/cairn-keystone

# The throwaway OpenStack cloud (scripts/openstack.sh) of make
# openstack-up/openstack-down, on the Ceph cluster CEPH_CONF names (make
# openstack-up starts one in OPENSTACK_DIR/ceph when CEPH_CONF is unset). make test
# starts its own after its Ceph cluster, unless OPENSTACK_ENV names the
# openstack.env of a running one already.
OPENSTACK_DIR ?= /tmp/cairn-openstack

# Project-local tools, outside the module's dependencies.
TOOLS_BIN := $(CURDIR)/bin/tools
# staticcheck 2026.2.2 is module version v0.8.2 (works with Go 1.26).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_BIN)/staticcheck

# The module's packages, without the git-ignored scratch folder tmp/.
PKGS = $(shell $(GO) list -e ./... | grep -v '^cairn/tmp/')

# The e2e package (crash loop, Ceph and RBD tests, under -race) runs over 10m.
GO_TEST_TIMEOUT ?= 25m
FUZZTIME ?= 20s
# Where go test -artifacts keeps the e2e tests' artefacts (screenshots).
ARTIFACTS ?= $(CURDIR)/.artifacts
FUZZ_PKGS ?= ./dedup/ ./dedup/compress/ ./dedup/pack/ ./dedup/erasure/ ./dedup/index/ ./mount/nbd/ ./blockdev/partition/ ./api/ ./appliance/ ./plugins/ ./internal/fspath/ ./plugins/glance/ ./plugins/neutron/

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
	layering bench fuzz demo clean help ceph-up ceph-down keystone-up keystone-down \
	openstack-up openstack-down image

all: build

help:
	@echo "make build       build bin/cairn"
	@echo "make image       build the appliance's Glance image $(IMAGE) (root; docs/appliance.md)"
	@echo "make demo        build, then back up, restore and verify a demo disk image in ./.demo"
	@echo "make test        install test deps, lint, layering check, go test -race ./..."
	@echo "make lint        go vet, gofmt check, staticcheck, go mod tidy check, layering check"
	@echo "make ceph-up     start a throwaway Ceph cluster in CEPH_DIR=$(CEPH_DIR) (prints its ceph.conf)"
	@echo "make ceph-down   stop it and remove CEPH_DIR"
	@echo "make keystone-up   start a throwaway Keystone in KEYSTONE_DIR=$(KEYSTONE_DIR) (prints its keystone.env)"
	@echo "make keystone-down stop it and remove KEYSTONE_DIR"
	@echo "make openstack-up   start a throwaway OpenStack in OPENSTACK_DIR=$(OPENSTACK_DIR) on CEPH_CONF (prints its openstack.env)"
	@echo "make openstack-down stop it and remove OPENSTACK_DIR (and the Ceph cluster openstack-up started)"
	@echo "make bench       run scripts/bench.sh"
	@echo "make fuzz        run each Fuzz* test in $(FUZZ_PKGS) for FUZZTIME=$(FUZZTIME)"
	@echo "make clean       remove bin/, .demo/, .bench/ and .artifacts/"

## build: the one binary.
build:
	$(GO) build $(TAGS_FLAG) -o bin/cairn ./cmd/cairn

## image: the appliance as a bootable qcow2 for Glance (docs/appliance.md).
# Needs root and the deps; the rootfs and the image are cached in
# CAIRN_IMAGE_CACHE (default ~/.cache/cairn-image), keyed by the package
# list, the binary and image/rootfs.
IMAGE ?= cairn-appliance.qcow2
image: deps build
	./image/build.sh bin/cairn $(IMAGE)

## demo: the quick start (local-directory repository, no Ceph/OpenStack).
demo: build
	./scripts/demo.sh

## deps: Debian packages that tests, benchmarks and the demo call.
deps:
	./scripts/install-test-deps.sh

## test: everything CI runs.
test: deps lint test-go

# Tests tagged "ceph" need a cluster: test-go starts a throwaway one (unless
# CEPH_CONF is set), exports CEPH_CONF to go test, and stops it afterwards,
# whatever the outcome. Likewise Keystone: test-go starts a throwaway one
# (unless KEYSTONE_ENV is set; without keystone-manage it is skipped, or fails
# under CAIRN_REQUIRE_ALL=1) and exports the path of its keystone.env to go
# test as CAIRN_TEST_KEYSTONE_ENV. And OpenStack, on that Ceph cluster:
# test-go starts a throwaway cloud (unless OPENSTACK_ENV is set; without
# the packages it is skipped, and so are the OpenStack tests, or it fails
# under CAIRN_REQUIRE_ALL=1) and exports OPENSTACK_ENV to go test. One EXIT
# trap stops all three.
# The e2e tests' artefacts (the console tests' screenshots) are kept under
# ARTIFACTS/_artifacts/, one directory per test.
# Unit tests run under the race detector; the end-to-end tests drive the real
# binary and real clients, where -race would only multiply their run time.
# The repository's tests run once more without cgo, as cairn builds on a
# machine with no C compiler: with the pure-Go zstd codec (dedup/compress).
RUN_GO_TESTS = CGO_ENABLED=1 $(GO) test $(TAGS_FLAG) -race -count=1 -timeout $(GO_TEST_TIMEOUT) $(filter-out cairn/e2e,$(PKGS)) \
	&& CGO_ENABLED=0 $(GO) test -count=1 -timeout $(GO_TEST_TIMEOUT) ./dedup/... \
	&& mkdir -p $(ARTIFACTS) \
	&& CGO_ENABLED=1 $(GO) test $(TAGS_FLAG) -count=1 -timeout $(GO_TEST_TIMEOUT) -artifacts -outputdir $(ARTIFACTS) cairn/e2e

test-go:
	@echo "==> go test -race (unit) and go test (e2e), CAIRN_REQUIRE_ALL=$(CAIRN_REQUIRE_ALL), tags: $(or $(strip $(GO_TAGS)),none)"
	@if [[ $(CAIRN_REQUIRE_ALL) == 1 && " $(GO_TAGS) " != *" ceph "* ]]; then \
		echo "GO_TAGS lacks 'ceph' (no /usr/include/rados/librados.h?): Ceph tests would not run"; \
		exit 1; \
	fi
	@if [[ $(CAIRN_REQUIRE_ALL) == 1 && -z "$${KEYSTONE_ENV-}" ]] && ! command -v keystone-manage >/dev/null; then \
		echo "keystone-manage not found (Debian package python3-keystone): Keystone tests would not run"; \
		exit 1; \
	fi
	@if [[ $(CAIRN_REQUIRE_ALL) == 1 && -z "$${OPENSTACK_ENV-}" ]] && ! $(OPENSTACK_PRESENT); then \
		echo "python3-cinder, python3-nova, python3-neutron, mariadb-server or rabbitmq-server missing (make deps): OpenStack tests would not run"; \
		exit 1; \
	fi
	@ceph_dir= ks_dir= os_dir=; \
	trap '[[ -z $$os_dir ]] || ./scripts/openstack.sh stop "$$os_dir"; \
		[[ -z $$ceph_dir ]] || ./scripts/ceph-cluster.sh stop "$$ceph_dir"; \
		[[ -z $$ks_dir ]] || ./scripts/keystone.sh stop "$$ks_dir"' EXIT; \
	if [[ -z "$${CEPH_CONF-}" && " $(GO_TAGS) " == *" ceph "* ]]; then \
		ceph_dir=$$(mktemp -d "$${TMPDIR:-/tmp}/cairn-ceph-test.XXXXXX"); \
		echo "==> starting a throwaway Ceph cluster in $$ceph_dir"; \
		CEPH_CONF=$$(CEPH_MON_PORT=auto ./scripts/ceph-cluster.sh start "$$ceph_dir"); \
		export CEPH_CONF; \
		echo "==> CEPH_CONF=$$CEPH_CONF"; \
	fi; \
	if [[ -z "$${OPENSTACK_ENV-}" && -n "$${CEPH_CONF-}" ]] && $(OPENSTACK_PRESENT); then \
		os_dir=$$(mktemp -d "$${TMPDIR:-/tmp}/cairn-openstack-test.XXXXXX"); \
		echo "==> starting a throwaway OpenStack in $$os_dir"; \
		OPENSTACK_ENV=$$(./scripts/openstack.sh start "$$os_dir"); \
	fi; \
	if [[ -n "$${OPENSTACK_ENV-}" ]]; then \
		export OPENSTACK_ENV; \
		echo "==> OPENSTACK_ENV=$$OPENSTACK_ENV"; \
	fi; \
	if [[ -z "$${KEYSTONE_ENV-}" ]] && command -v keystone-manage >/dev/null; then \
		ks_dir=$$(mktemp -d "$${TMPDIR:-/tmp}/cairn-keystone-test.XXXXXX"); \
		echo "==> starting a throwaway Keystone in $$ks_dir"; \
		KEYSTONE_ENV=$$(KEYSTONE_PORT=auto ./scripts/keystone.sh start "$$ks_dir"); \
	fi; \
	if [[ -n "$${KEYSTONE_ENV-}" ]]; then \
		export CAIRN_TEST_KEYSTONE_ENV=$$KEYSTONE_ENV; \
		echo "==> CAIRN_TEST_KEYSTONE_ENV=$$CAIRN_TEST_KEYSTONE_ENV"; \
	fi; \
	$(RUN_GO_TESTS)

# Whether the test cloud's packages are installed (make deps installs them).
OPENSTACK_PRESENT = { /usr/bin/python3 -c 'import cinder, nova, glance, placement, neutron' 2>/dev/null \
	&& PATH="$$PATH:/usr/sbin" command -v mariadbd rabbitmq-server >/dev/null; }

## ceph-up / ceph-down: a throwaway single-node Ceph cluster on loopback.
ceph-up:
	./scripts/ceph-cluster.sh start $(CEPH_DIR)

ceph-down:
	./scripts/ceph-cluster.sh stop $(CEPH_DIR)

## keystone-up / keystone-down: a throwaway Keystone (identity v3) on loopback.
keystone-up:
	./scripts/keystone.sh start $(KEYSTONE_DIR)

keystone-down:
	./scripts/keystone.sh stop $(KEYSTONE_DIR)

## openstack-up / openstack-down: a throwaway OpenStack cloud on loopback,
## on CEPH_CONF's cluster or on one of its own in OPENSTACK_DIR/ceph.
openstack-up:
	@if [[ -z "$${CEPH_CONF-}" ]]; then \
		mkdir -p $(OPENSTACK_DIR); \
		CEPH_CONF=$$(CEPH_MON_PORT=auto ./scripts/ceph-cluster.sh start $(OPENSTACK_DIR)/ceph); \
		export CEPH_CONF; \
	fi; \
	./scripts/openstack.sh start $(OPENSTACK_DIR)/cloud

openstack-down:
	./scripts/openstack.sh stop $(OPENSTACK_DIR)/cloud
	./scripts/ceph-cluster.sh stop $(OPENSTACK_DIR)/ceph
	rm -rf $(OPENSTACK_DIR)

## lint: static checks only; no test binaries except the layering check.
lint: vet fmt-check staticcheck tidy-check layering

# The e2e tests' build adds the cairn_testhooks tag (backup/testhooks_on.go):
# vet that variant of the package too.
vet:
	@echo "==> go vet"
	$(GO) vet $(TAGS_FLAG) $(PKGS)
	$(GO) vet -tags '$(strip $(GO_TAGS) cairn_testhooks)' ./backup
	CGO_ENABLED=0 $(GO) vet ./dedup/...

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
	CGO_ENABLED=0 $(STATICCHECK) ./dedup/...

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
	./scripts/bench-all.sh

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
	rm -rf bin .demo .bench .artifacts $(IMAGE)
