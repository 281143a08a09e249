#!/usr/bin/env python3
"""Writes the per-service manifests of k8s/apps/ (Deployment, Service, HPA and
PodDisruptionBudget for every service and the gateway) from the table below, so the eleven
stay alike. The output is plain YAML, committed; edit this table and re-run:

    python3 deploy/k8s/generate.py

The rest of k8s/ (namespace, config, data stores, NGINX, jobs, network policies) is written by
hand. `deploy/k8s/check.py` (part of `make test`) boots every Deployment from these files.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "payments-platform:dev"

# name, binary, grpc port (None for the gateway), admin port, http port, extra env,
# hpa min/max, memory request/limit (MiB)
APPS = [
    ("user", "user-service", 50051, 9101, None, {}, 2, 6, 128, 512),
    ("role", "role-service", 50052, 9102, None, {}, 2, 4, 48, 192),
    ("card", "card-service", 50053, 9103, None, {}, 2, 6, 48, 192),
    ("saldo", "saldo-service", 50054, 9104, None, {}, 2, 8, 48, 192),
    ("topup", "topup-service", 50055, 9105, None, {}, 2, 6, 48, 192),
    ("transfer", "transfer-service", 50056, 9106, None, {}, 2, 8, 48, 192),
    ("withdraw", "withdraw-service", 50057, 9107, None, {}, 2, 6, 48, 192),
    ("merchant", "merchant-service", 50058, 9108, None, {}, 2, 4, 48, 192),
    ("transaction", "transaction-service", 50059, 9109, None, {}, 2, 8, 48, 192),
    ("email", "email-service", 50060, 9110, None, {}, 1, 3, 48, 192),
    ("gateway", "gateway", None, 9100, 8000, {}, 2, 10, 48, 192),
]


def deployment(name, binary, grpc, admin, http, extra, mem_req, mem_lim, replicas):
    ports = []
    if grpc:
        ports.append(f"""            - name: grpc
              containerPort: {grpc}""")
    if http:
        ports.append(f"""            - name: http
              containerPort: {http}""")
    ports.append(f"""            - name: admin
              containerPort: {admin}""")
    listen = (f"""            - name: GRPC_ADDR
              value: "0.0.0.0:{grpc}"
""" if grpc else f"""            - name: HTTP_ADDR
              value: "0.0.0.0:{http}"
""")
    for key, value in extra.items():
        listen += f"""            - name: {key}
              value: "{value}"
"""
    liveness = (f"""          livenessProbe:
            grpc:
              port: {grpc}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3""" if grpc else f"""          livenessProbe:
            httpGet:
              path: /healthz
              port: admin
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3""")
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: payments
    app.kubernetes.io/component: app
spec:
  replicas: {replicas}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
        app.kubernetes.io/part-of: payments
        app.kubernetes.io/component: app
        payments/data-access: "true"
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "{admin}"
        prometheus.io/path: /metrics
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {name}
          image: {IMAGE}
          imagePullPolicy: IfNotPresent
          command: ["/usr/local/bin/{binary}"]
          args: ["serve"]
          envFrom:
            - configMapRef:
                name: platform-config
            - configMapRef:
                name: jwt-public-keys
            - secretRef:
                name: {name}-secrets
          env:
{listen}            - name: ADMIN_ADDR
              value: "0.0.0.0:{admin}"
          ports:
{chr(10).join(ports)}
          startupProbe:
            httpGet:
              path: /healthz
              port: admin
            periodSeconds: 2
            failureThreshold: 60
          readinessProbe:
            httpGet:
              path: /readyz
              port: admin
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
{liveness}
          resources:
            requests:
              cpu: 50m
              memory: {mem_req}Mi
            limits:
              cpu: "1"
              memory: {mem_lim}Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
"""


def service(name, grpc, admin, http):
    ports = []
    if grpc:
        ports.append(f"""    - name: grpc
      port: {grpc}
      targetPort: grpc
      appProtocol: kubernetes.io/h2c""")
    if http:
        ports.append(f"""    - name: http
      port: {http}
      targetPort: http""")
    ports.append(f"""    - name: admin
      port: {admin}
      targetPort: admin""")
    svc = f"{name}-service" if grpc else name
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {svc}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: payments
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
{chr(10).join(ports)}
"""


def hpa(name, low, high):
    return f"""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: payments
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: {low}
  maxReplicas: {high}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 70
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: 80
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 120
"""


def pdb(name):
    return f"""apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: payments
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
"""


def nginx_config():
    """The NGINX template as a ConfigMap, byte for byte (kustomize may not read files outside
    k8s/, and one template must serve every environment)."""
    template = (ROOT / "nginx" / "nginx.conf.template").read_text()
    body = "".join(f"    {line}\n" if line else "\n" for line in template.splitlines())
    return (
        "# generated by deploy/k8s/generate.py from nginx/nginx.conf.template — do not edit.\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nginx-template\n"
        "  labels:\n    app.kubernetes.io/part-of: payments\ndata:\n"
        "  nginx.conf.template: |\n" + body
    )


def db_roles_script():
    """deploy/local/service-roles.sh as a ConfigMap, byte for byte: the db-roles Job runs the
    script `make run` runs."""
    script = (ROOT / "deploy" / "local" / "service-roles.sh").read_text()
    body = "".join(f"    {line}\n" if line else "\n" for line in script.splitlines())
    return (
        "# generated by deploy/k8s/generate.py from deploy/local/service-roles.sh — do not edit.\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: db-roles-script\n"
        "  labels:\n    app.kubernetes.io/part-of: payments\ndata:\n"
        "  service-roles.sh: |\n" + body
    )


def outputs():
    """Every generated file: path → content."""
    files = {
        ROOT / "k8s" / "edge" / "nginx-template.yaml": nginx_config(),
        ROOT / "k8s" / "jobs" / "db-roles-script.yaml": db_roles_script(),
    }
    out = ROOT / "k8s" / "apps"
    names = []
    for name, binary, grpc, admin, http, extra, low, high, mem_req, mem_lim in APPS:
        header = (f"# {name}: generated by deploy/k8s/generate.py — edit the table there.\n")
        docs = [
            deployment(name, binary, grpc, admin, http, extra, mem_req, mem_lim, low),
            service(name, grpc, admin, http),
            hpa(name, low, high),
            pdb(name),
        ]
        files[out / f"{name}.yaml"] = header + "---\n".join(docs)
        names.append(f"{name}.yaml")
    files[out / "kustomization.yaml"] = (
        "# generated by deploy/k8s/generate.py\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        + "".join(f"  - {n}\n" for n in names)
    )
    return files


def main():
    import sys
    stale = []
    for path, content in outputs().items():
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != content:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if stale:
        sys.exit("out of date (run python3 deploy/k8s/generate.py): " + ", ".join(stale))


if __name__ == "__main__":
    main()
