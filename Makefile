# One entry point per job; the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup compile test test-fast lint demo bench bench-gas bench-indexer bench-throughput slither clean

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# halmos (symbolic execution, tests/contracts/test_fast_path_equivalence.py) in a virtualenv of its own: it pins
# rich<14.1, the package rich==14.3.4.
HALMOS_VENV := $(VENV)/halmos

$(HALMOS_VENV)/.installed: test/fastpath/requirements-halmos.txt
	python3.11 -m venv $(HALMOS_VENV)
	$(HALMOS_VENV)/bin/pip install --quiet -r test/fastpath/requirements-halmos.txt
	touch $@

setup: $(VENV)/.installed $(HALMOS_VENV)/.installed node_modules/.installed compile

# Geth v1.13.15, the last release that seals Clique blocks (the permissioned network: docs/NETWORK.md), built from
# the Go module proxy into the project's tool folder once per machine (go's caches keep a rebuild short).
# -checklinkname=0: its fjl/memsize dependency links runtime internals that Go >= 1.23 refuses to link otherwise;
# that code only runs behind geth's pprof/memsize endpoint, which the network never enables.
GETH := .tools/bin/geth

$(GETH):
	GOBIN=$(CURDIR)/.tools/bin go install -ldflags=-checklinkname=0 github.com/ethereum/go-ethereum/cmd/geth@v1.13.15

setup: $(GETH)

# ape-solidity unpacks OpenZeppelin (~700 files) into contracts/.cache, and ape lists at most 500 files of the
# contracts folder, so our own sources would drop out of view: the cache is removed once compiled. The merged
# ABI is then written into the package (deposit_token/chain/abi/deposit_token.json, committed: see that module).
compile: $(VENV)/.installed node_modules/.installed
	$(PY) -m deposit_token.chain.toolchain
	ape compile
	rm -rf contracts/.cache
	$(PY) -m deposit_token.chain.abi export

# Everything, in three processes at once (tools/test-lanes.sh): the Geth network tests, the contracts' and unit
# tests, and the rest; each lane's own output, then one status.
test: setup
	tools/test-lanes.sh

# The inner loop: everything but the tests marked slow (see tests/conftest.py), under 2 minutes.
test-fast: setup
	ape test tests -q -m "not slow"

# ruff (format and lint) over the tree, mypy --strict over the package (pyproject.toml); tests/unit/test_lint_types.py
# runs the same in the test suite.
lint: $(VENV)/.installed
	ruff format --check deposit_token scripts tests bench
	ruff check deposit_token scripts tests bench
	mypy

demo: setup
	ape run demo

bench: bench-gas bench-indexer bench-throughput

bench-gas: setup
	$(PY) -m bench.gas

bench-indexer: setup
	$(PY) -m bench.indexer

bench-throughput: setup
	$(PY) -m bench.throughput

# The JSON-RPC gateway's overhead per request and for a batch of 1,000 raw transactions, against the node asked
# directly in the same run (bench/gateway.py).
.PHONY: bench-gateway
bench-gateway: setup
	$(PY) -m bench.gateway

# The pilot on a fresh Geth Clique network (3 sealers + archive, free ports, a temporary directory) through the
# gateway: payments/s end to end against geth's own ingest ceiling in the same run, gateway overhead, confirmation
# latency, indexer events/s (bench/network.py). About 2.5 minutes: not part of `make bench`.
.PHONY: bench-network
bench-network: setup
	$(PY) -m bench.network

# The auditors' console and public portal under load: 1,000,000 payments generated through the schema into a
# throwaway PostgreSQL (bench/web_data.py), the server in its own process, 20 concurrent clients per page, live
# latency to the event stream (bench/web.py -> bench/results/web.json). About 6 minutes: not part of `make bench`.
.PHONY: bench-web
bench-web: setup
	$(PY) -m bench.web

# Bytes per payment and per empty block on a fresh Geth network's sealers and archive node (du -sb of each node's
# chaindata, every node stopped after each phase) and in the audit database (SQLite file, PostgreSQL relation
# sizes) for 20,000 payments (bench/storage.py -> bench/results/storage.json; docs/SCALING.md's storage per year).
# About 6 minutes: not part of `make bench`.
.PHONY: bench-storage
bench-storage: setup
	$(PY) -m bench.storage

# A national rollout's year in the audit database: 10,000,000 payments (100,000 officials, 20,000 vendors, 5
# programs, with their transfers, allocations, redemptions) written by COPY through the schema into a throwaway
# PostgreSQL with monthly partitions, then audit report (per section), flags for one month, public and a one-month
# export timed through the library the CLI uses, and the one-month plans EXPLAINed (bench/audit_scale.py ->
# bench/results/audit_scale.json). About 50 minutes on an idle machine (10 to write the year, 35 to build the
# derived tables) and 12 GB of disk: not part of `make bench`. `$(PY) -m bench.audit_scale --data-dir DIR` keeps
# the server's data in DIR: a later run with the same parameters reuses it (migrated forward, derived tables
# refreshed; meta.data says so) and re-times the questions in about a minute; `--build-only` only builds it;
# `--payments 1000000` runs a smaller year.
.PHONY: bench-audit-scale
bench-audit-scale: setup
	$(PY) -m bench.audit_scale

# docs/SCALING.md's derived figures (payments per day and at the lunch peak, payments per block, storage per year,
# a year's backfill) from bench/results/*.json and the document's assumptions (bench/scaling.py); measures nothing.
.PHONY: scaling
scaling: $(VENV)/.installed
	$(PY) -m bench.scaling

slither: setup
	tools/slither.sh

clean:
	rm -rf .build contracts/.cache

# The web console's browser libraries (uPlot for charts, htmx), pinned in package.json, copied into the package so
# that the console works offline (no CDN). The copies are committed (tests/web checks they match node_modules);
# after changing a version in package.json run `make web-vendor` and commit deposit_token/web/static/vendor/.
WEB_VENDOR := deposit_token/web/static/vendor
.PHONY: web-vendor serve-web
web-vendor: node_modules/.installed
	mkdir -p $(WEB_VENDOR)
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css $(WEB_VENDOR)/
	cp node_modules/htmx.org/dist/htmx.min.js $(WEB_VENDOR)/
	cp node_modules/uplot/LICENSE $(WEB_VENDOR)/uPlot.LICENSE
	cp node_modules/htmx.org/LICENSE $(WEB_VENDOR)/htmx.LICENSE

# The auditors' console and the public portal on http://127.0.0.1:8000 over the pilot network's audit database
# (docs/WEB.md: accounts first, `ape run audit users add NAME --role supervisor`).
serve-web: setup
	ape run audit serve

# The web tests alone (tests/web: real server, real database, Chromium); web-screenshots also refreshes
# docs/screenshots/ from the browser test (a plain test run leaves them as they are).
.PHONY: test-web web-screenshots
test-web: setup
	ape test tests/web -q

web-screenshots: setup
	DEPOSIT_TOKEN_WEB_SCREENSHOTS=1 ape test tests/web/test_web_browser.py -q
