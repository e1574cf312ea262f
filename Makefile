# regionsync — the two commands: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/release/regionsync

.PHONY: help run demo chaos test bench lint fmt migrate arch setup container

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: setup ## one region on SQLite (./data/regionsync.db), no configuration; Ctrl-C stops it
	$(CARGO) build --release -p app
	@echo "regionsync: serving region '$${REGIONSYNC_REGION_ID:-local}' at http://$${REGIONSYNC_HTTP__BIND:-127.0.0.1:8080} (try /health/ready)"
	$(BIN) serve --with-scheduler

demo: setup ## 3 regions (SQLite, MariaDB, PostgreSQL when they answer) race writes to the same rows; a live table until they converge; ARGS='--backends sqlite'
	$(CARGO) build --release --bin regionsync -p app
	$(CARGO) build --release -p harness --bin demo
	$(TARGET_DIR)/release/demo $(ARGS)

SEEDS ?= 500
chaos: setup ## R1 on SEEDS seeds (default 500): 3 regions as processes under faults, kills and skew
	$(CARGO) build --bin regionsync -p app
	CHAOS_SEEDS=$(SEEDS) $(CARGO) test -p harness --test r1_convergence r1_three -- --nocapture

test: setup ## formatting, clippy -D warnings, every test on SQLite (+ MariaDB, PostgreSQL when TEST_MYSQL_URL, TEST_PG_URL are set)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings
	scripts/test-suites.sh

bench: setup ## ratio benchmarks (QUALITY-BARS.md) with a table; ARGS='--json out.json --ops 200000', BENCH_*
	$(CARGO) bench -p app --bench sync -- $(ARGS)
	@# B12/B13: the drains of a 100 K backlog by release-build processes (scripts/drain.py), on
	@# SQLite, + MariaDB when TEST_MYSQL_URL is set, + PostgreSQL when TEST_PG_URL is set.
	@backends=sqlite$${TEST_MYSQL_URL:+,mysql}$${TEST_PG_URL:+,postgres}; \
	case ",$${BENCH_ONLY:-B12}," in *,B12,*|*,B13,*) \
	  $(CARGO) build --release -p app && \
	  python3 scripts/drain.py --backend $$backends --bulk 1000 \
	    --rows $${BENCH_DRAIN_ROWS:-100000} --repeat $${BENCH_DRAIN_REPEAT:-3};; \
	  *) echo "B12/B13 skipped (BENCH_ONLY)";; esac

.PHONY: bench-pouchdb
bench-pouchdb: setup ## bench's drains (B12/B13) beside a PouchDB HTTP replication, issue 14's reference (needs node, npm)
	$(CARGO) build --release -p app
	@backends=sqlite$${TEST_MYSQL_URL:+,mysql}$${TEST_PG_URL:+,postgres}; \
	python3 scripts/drain.py --backend $$backends --bulk 1000 --pouchdb \
	  --rows $${BENCH_DRAIN_ROWS:-100000} --repeat $${BENCH_DRAIN_REPEAT:-3}

lint: ## clippy with warnings denied
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## format the code
	$(CARGO) fmt --all

migrate: ## apply pending migrations to the configured database
	$(CARGO) run -q -p app -- migrate run

container: ## a new synced domain container: NAME=inventory [FIELDS="sku:string:64 qty:int:0.. on:bool"] [ENTITY=item] [SPEC=f.toml]
	python3 scripts/new-container.py --name "$(NAME)" $(if $(ENTITY),--entity "$(ENTITY)") \
	  $(if $(FIELDS),--fields "$(FIELDS)") $(if $(SPEC),--spec "$(SPEC)")

arch: ## only the crate-rules test
	$(CARGO) test -p app --test architecture

setup: ## system packages the build links against (guarded: quick when present)
	@scripts/setup.sh
