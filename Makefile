# Entry points of the payment platform. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

.PHONY: help run test bench reconcile fmt lint build migrate

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

run: ## Start the whole platform locally (NGINX on http://127.0.0.1:8080) with the admin login
	@deploy/local/run.sh

test: ## fmt check, clippy and every test against real PostgreSQL, Redis, broker and NGINX
	@deploy/local/test.sh

bench: ## Transfers/s and latency through NGINX vs the pgbench ceiling of the same SQL (stop `make run` first)
	@deploy/local/bench.sh

reconcile: ## Check the ledger of DATABASE_URL: journal sums to zero, balances equal their lines
	cargo run -q --bin saldo-service -- reconcile

fmt: ## Format the code
	cargo fmt --all

lint: ## Clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

build: ## Build every binary (release)
	cargo build --release --bins

migrate: ## Apply every service's migrations to DATABASE_URL
	cargo run -q --bin user-service -- migrate
	cargo run -q --bin role-service -- migrate
	cargo run -q --bin card-service -- migrate
	cargo run -q --bin saldo-service -- migrate
	cargo run -q --bin topup-service -- migrate
	cargo run -q --bin withdraw-service -- migrate
	cargo run -q --bin transfer-service -- migrate
