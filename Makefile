# banyan: the two set-up commands are `make demo` and `make test`. Each installs what the
# build needs when it is missing (a C compiler for ring), so both work on a fresh machine.

CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps browser-deps test-deps bench-deps build release test lint unit fuzz demo bench bench-quick bench-build bench-instructions bench-allocations bench-idle docs clean

deps:
	@command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust with rustup (https://rustup.rs)"; exit 1; }
	@command -v cc >/dev/null 2>&1 || { \
		echo "installing a C compiler (ring builds C)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq build-essential; }

# Headless Chromium and its WebDriver, for the dashboard's browser tests.
browser-deps:
	@{ command -v chromedriver && command -v chromium; } >/dev/null 2>&1 || { \
		echo "installing chromium and chromium-driver (dashboard browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }

# systemd-socket-activate, to test socket activation as systemd does it; schemathesis
# (PyPI, pinned) in target/schemathesis, to hold the admin API to its OpenAPI document;
# a PostgreSQL for the fleet tests (scripts/test-postgres.sh: installed and started only
# when none answers on 127.0.0.1:5432 and BANYAN_TEST_POSTGRES is not set);
# kubernetes-validate (PyPI, pinned) in target/kubernetes-validate, for deploy/kubernetes.
SCHEMATHESIS_VERSION := 4.32.5
KUBERNETES_VALIDATE_VERSION := 1.37.0
test-deps:
	@command -v systemd-socket-activate >/dev/null 2>&1 || { \
		echo "installing systemd (systemd-socket-activate, for the socket activation test)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq systemd; }
	@target/schemathesis/bin/schemathesis --version 2>/dev/null | grep -q "$(SCHEMATHESIS_VERSION)" || { \
		echo "installing schemathesis $(SCHEMATHESIS_VERSION) into target/schemathesis (admin API conformance test)"; \
		python3 -m venv target/schemathesis >/dev/null 2>&1 || { \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv python3-pip && \
			python3 -m venv target/schemathesis; }; \
		target/schemathesis/bin/pip install -q "schemathesis==$(SCHEMATHESIS_VERSION)"; }
	@bash scripts/test-postgres.sh
	@target/kubernetes-validate/bin/pip show kubernetes-validate 2>/dev/null | grep -q "Version: $(KUBERNETES_VALIDATE_VERSION)" || { \
		echo "installing kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) into target/kubernetes-validate (deploy/kubernetes test)"; \
		python3 -m venv target/kubernetes-validate >/dev/null 2>&1 || { \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv python3-pip && \
			python3 -m venv target/kubernetes-validate; }; \
		target/kubernetes-validate/bin/pip install -q "kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)"; }

# What the load test needs besides Rust: nginx and HAProxy (the references), cmake
# (pingora's zlib-ng, for the bare pingora proxy), python3 (the harness).
bench-deps: deps
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null 2>&1 \
		&& { command -v haproxy || test -x /usr/sbin/haproxy; } >/dev/null 2>&1 \
		&& command -v cmake >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 || { \
		echo "installing nginx, haproxy, cmake and python3 (load test)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nginx haproxy cmake python3; }

build: deps
	$(CARGO) build --locked

release: deps
	$(CARGO) build --release --locked

# Formatting, lints, unit and integration tests (real sockets, loopback only), the
# dashboard's browser tests (screenshots under target/screenshots/), and a short fuzzing
# pass (tests/fuzz.rs, 256 cases per property).
test: deps browser-deps test-deps lint
	$(CARGO) test --locked

# Formatting, clippy, and the layering check (tests/layers.rs: no module imports from a
# layer above it; docs/ARCHITECTURE.md names the layers).
lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	$(CARGO) test --locked --test layers

unit: deps
	$(CARGO) test --locked --lib

# The property-based fuzzing of the config parser, route matcher and JSON comparator, at
# length (FUZZ_CASES per property; a shrunk failure is saved under proptest-regressions/).
FUZZ_CASES ?= 100000
fuzz: deps
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --locked --test fuzz

# Two demo backends and banyan in front of them, on 127.0.0.1:8080 (admin :9090).
demo: release
	./target/release/banyan demo

# The load test against nginx (loadtest/README.md): results in loadtest/results/.
# Its programs build into the same target/ (a package of their own, outside `make test`).
# The load test's package depends on banyan by path (for banyan-counted): its lock file
# follows banyan's dependencies, so it is not built --locked.
bench-build: bench-deps
	$(CARGO) build --release --locked
	$(CARGO) build --release --manifest-path loadtest/Cargo.toml --features pingora --target-dir target

bench: bench-build
	python3 loadtest/run.py

bench-quick: bench-build
	python3 loadtest/run.py --quick

# Instructions per request under callgrind (loadtest/instructions.py): figures that the
# machine's neighbours do not move, to compare builds (--against) and banyan with hyper.
bench-instructions: bench-build
	@command -v valgrind >/dev/null 2>&1 || { \
		echo "installing valgrind (instruction counts)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq valgrind; }
	python3 loadtest/instructions.py

# Heap allocations per forwarded request (loadtest/allocations.py): banyan built with a
# counting global allocator, in a binary of the load test's package.
bench-allocations: bench-build
	$(CARGO) build --release --manifest-path loadtest/Cargo.toml --features count-allocations --bin banyan-counted --target-dir target
	python3 loadtest/allocations.py

# RSS with 10,000 idle keep-alive connections open and after they close
# (loadtest/idle_connections.py): results in loadtest/results/idle-connections.md.
bench-idle: release
	python3 loadtest/idle_connections.py --connections 10000

# The reference in docs/ as a small site (mdBook) in target/book. The pages are plain
# Markdown and read the same on GitHub; tests/docs.rs (in make test) keeps them true.
MDBOOK_VERSION := 0.5.4
docs:
	@command -v mdbook >/dev/null 2>&1 || { \
		echo "installing mdbook $(MDBOOK_VERSION) (cargo install, a few minutes once)"; \
		$(CARGO) install mdbook --locked --version $(MDBOOK_VERSION); }
	mdbook build docs
	@echo "open target/book/index.html"

clean:
	$(CARGO) clean
