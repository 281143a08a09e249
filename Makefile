# Entry points of the payment platform. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

.PHONY: help run status test bench bench-stats soak reconcile seed fmt lint build migrate docker-build docker-up docker-down \
	kube-start kube-secrets kube-build kube-up kube-seed kube-status kube-forward kube-down

SERVICES := user role card saldo topup withdraw transfer merchant transaction email
IMAGE := payments-platform:dev
KUBE_NS := payments
SEED_SIZE ?= small

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

run: ## Start the whole platform locally (NGINX on http://127.0.0.1:8080 and https://localhost:8443) with the admin login
	@deploy/local/run.sh

status: ## Readiness of every `make run` process, and every consumer group's lag and state
	@deploy/local/status.sh

test: ## fmt check, clippy and every test against real PostgreSQL, Redis, broker and NGINX
	@deploy/local/test.sh

bench: ## Transfers/s and latency through NGINX vs the pgbench ceiling of the same SQL (stop `make run` first)
	@deploy/local/bench.sh

bench-stats: ## p99 of every statistics endpoint through NGINX, small vs large demo data (the large seed is long, once)
	@deploy/local/bench-stats.sh

soak: ## Event backbone under load: demo seed + transfers, a broker restart midway, lag and rates (stop `make run` first)
	@deploy/local/soak.sh

reconcile: ## Check the ledger of DATABASE_URL: journal sums to zero, balances equal their lines
	cargo run -q --bin saldo-service -- reconcile

fmt: ## Format the code
	cargo fmt --all

lint: ## Clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

build: ## Build every binary (release)
	cargo build --release --bins

migrate: ## Apply every service's migrations to DATABASE_URL
	cargo build -q --bins
	@for s in $(SERVICES); do echo "migrating $$s"; target/debug/$$s-service migrate || exit 1; done

seed: ## Demo data into the running platform (`make run` first); SEED_SIZE=small|large
	cargo run -q --bin seed -- demo --size $(SEED_SIZE)

docker-build: ## Build the platform image (all binaries) with Docker
	docker build -f deploy/Dockerfile -t $(IMAGE) .

docker-up: ## The whole platform with Docker Compose (NGINX :8080, Grafana :3000, mail :8025)
	@deploy/k8s/make-secrets.sh
	docker compose -f deploy/docker-compose.yml up -d --build
	@echo "API http://127.0.0.1:8080/api/v1  Grafana http://127.0.0.1:3000  mail http://127.0.0.1:8025"

docker-down: ## Stop Docker Compose (volumes are kept; add -v by hand to drop them)
	docker compose -f deploy/docker-compose.yml down

kube-start: ## Start Minikube with a CNI that enforces NetworkPolicies, and metrics for HPAs
	minikube start --cpus=4 --memory=8g --cni=calico
	minikube addons enable metrics-server

kube-secrets: ## Generate k8s/config/secrets.env and NGINX's certificate (k8s/config/tls; extra names: TLS_SANS="IP:$(minikube ip)")
	@deploy/k8s/make-secrets.sh

kube-build: ## Build the platform image inside Minikube
	minikube image build -t $(IMAGE) -f deploy/Dockerfile .

kube-up: kube-secrets ## Apply k8s/ and wait for every Deployment and Job
	kubectl apply -k k8s
	kubectl -n $(KUBE_NS) rollout status statefulset/postgres statefulset/redis statefulset/kafka --timeout=300s
	kubectl -n $(KUBE_NS) wait --for=condition=complete job/db-roles job/migrate job/kafka-topics --timeout=600s
	kubectl -n $(KUBE_NS) wait --for=condition=available deployment --all --timeout=600s
	@echo "API: https://$$(minikube ip):30443/api/v1 (CA: k8s/config/tls/ca.crt; or make kube-forward → https://localhost:8443)"

kube-seed: ## Apply the demo overlay (k8s-demo: demo data, documented passwords) and follow its Job
	kubectl -n $(KUBE_NS) delete job seed-demo --ignore-not-found
	kubectl apply -k k8s-demo
	kubectl -n $(KUBE_NS) wait --for=condition=complete job/seed-demo --timeout=900s
	kubectl -n $(KUBE_NS) logs job/seed-demo --tail=20

kube-status: ## Pods, HPAs, Jobs and Services of the platform
	kubectl -n $(KUBE_NS) get pods,hpa,jobs,svc,pvc

kube-forward: ## Forward NGINX's TLS ports to 127.0.0.1:8443/8444 and the mail UI to 127.0.0.1:8025
	kubectl -n $(KUBE_NS) port-forward svc/mailpit 8025:8025 >/dev/null & \
	kubectl -n $(KUBE_NS) port-forward svc/nginx 8443:8443 8444:8444

kube-down: ## Delete the platform from the cluster (PVCs too)
	kubectl delete -k k8s --ignore-not-found
	kubectl -n $(KUBE_NS) delete pvc --all --ignore-not-found
