# The two commands a fresh machine needs: `make demo` and `make test`.
# Both install missing dependencies first (scripts/install-deps.sh).

JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan demo cluster-demo pyenv test test-c test-asan test-python test-lua test-go test-cross test-cluster conformance fuzz fuzz-smoke bench bench-bindings bench-cluster install format format-check clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRPCNET_SANITIZE=ON -DRPCNET_BUILD_BENCH=OFF >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

# Workers in C, Python, Go and Lua and a C director (examples/cluster).
cluster-demo: pyenv
	@bash examples/cluster/run.sh $(BUILD)

test-c: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

# Python binding: a venv in $(BUILD)/pyenv, the package built (SWIG included)
# against the in-tree library, then pytest (exit 5, no tests, fails too).
PYENV = $(BUILD)/pyenv
pyenv: build
	python3 -m venv --system-site-packages $(PYENV)
	@$(PYENV)/bin/python -c "import pytest" 2>/dev/null || $(PYENV)/bin/pip install -q pytest
	@if $(PYENV)/bin/python -c "import setuptools, wheel" 2>/dev/null; then nbi=--no-build-isolation; fi; \
	  echo "pip install ./bindings/python $$nbi"; \
	  RPCNET_BUILD_DIR=$(abspath $(BUILD)) $(PYENV)/bin/pip install -q --force-reinstall --no-deps $$nbi ./bindings/python

test-python: pyenv
	$(PYENV)/bin/python -m pytest -q -p no:cacheprovider bindings/python/tests

# Lua binding: the module from $(BUILD)/bindings/lua, the Lua sources from
# the tree, throw-away certificates in $(BUILD)/lua-certs; then the rockspec:
# luarocks make into $(BUILD)/lua-rock/tree and a smoke test from that tree.
test-lua: build
	@bash scripts/gen-certs.sh $(BUILD)/lua-certs
	LUA_PATH='$(CURDIR)/bindings/lua/?.lua;;' LUA_CPATH='$(abspath $(BUILD))/bindings/lua/?.so;;' \
	  RPCNET_CERTS=$(abspath $(BUILD))/lua-certs lua5.4 bindings/lua/tests/run.lua
	bash bindings/lua/tests/rock.sh $(BUILD) $(BUILD)/lua-certs

# Every suite. Each step fails the target on its own failure.
test: format-check test-c test-asan test-python test-lua fuzz-smoke test-go test-cross conformance test-cluster
	@echo "make test: all suites passed"

# Go binding: in-tree pkg-config file, then vet, tests, race tests, examples.
GO_PC_DIR = $(abspath $(BUILD))/go-pkgconfig
# (the build writes $(GO_PC_DIR)/rpcnet.pc, pointing at the build tree)
# (RPCNET_BUILD_DIR: the C cluster worker and director that the Go cluster
# worker test runs next to the Go worker, examples/cluster/go.)
test-go: build
	cd bindings/go && export PKG_CONFIG_PATH=$(GO_PC_DIR) GOFLAGS=-mod=mod RPCNET_BUILD_DIR=$(abspath $(BUILD)) && go vet ./... && \
	  go test -count=1 -v ./... > $(abspath $(BUILD))/go-test.log 2>&1; rc=$$?; tail -3 $(abspath $(BUILD))/go-test.log; \
	  [ $$rc -eq 0 ] && grep -q '^--- PASS' $(abspath $(BUILD))/go-test.log && go test -race -count=1 ./...
	cd examples/go && PKG_CONFIG_PATH=$(GO_PC_DIR) GOFLAGS=-mod=mod go vet ./...
	cd examples/cluster/go && export PKG_CONFIG_PATH=$(GO_PC_DIR) GOFLAGS=-mod=mod && go vet ./... && \
	  go build -o $(abspath $(BUILD))/examples/cluster_worker_go .

fuzz-smoke: deps
	@bash scripts/fuzz.sh $(FUZZ_BUILD) 10

fuzz: deps
	@bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	./$(BUILD)/bench/rpcnet_bench

# Cluster with real processes on loopback (tests/cluster): kill -9, leave,
# restart, tags, wrong keys, a partition made with iptables. pytest's exit 5
# (no tests collected) fails the target like any other failure.
test-cluster: pyenv
	RPCNET_BUILD_DIR=$(abspath $(BUILD)) python3 -m pytest -q -p no:cacheprovider -s tests/cluster

# The membership simulator's figures (docs/cluster.md).
bench-cluster: build
	./$(BUILD)/bench/rpcnet_cluster_sim

# Each binding's server called by the other bindings' clients.
test-cross: test-python test-go test-lua
	bash tests/cross/run.sh $(BUILD)

# Every client language against every server language (conformance/README.md).
conformance: test-python test-go test-lua
	bash conformance/run.sh $(BUILD)

# Unary latency through each binding against one C server process.
bench-bindings: test-python test-go test-lua
	bash bench/bindings/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Fails when a C file is not formatted as .clang-format says (make format fixes it).
format-check: deps
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h') && echo "format-check: C sources formatted"
	@g=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$g" || { echo "$$g"; echo "gofmt -w them"; exit 1; }

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
