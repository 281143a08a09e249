#!/usr/bin/env bash
# `make status`: readiness of every process of `make run` and every Kafka consumer group's
# lag and state, as the processes' admin endpoints report them (/readyz, /status). The lag is
# measured from the broker (high watermark − committed offset, and the age of the oldest
# unconsumed message) every 10 s by each consumer's watchdog, whether or not messages flow.
# ADMIN_PORTS overrides where to look (default: the ports `make run` uses).

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORTS="${ADMIN_PORTS:-9100 9101 9102 9103 9104 9105 9106 9107 9108 9109 9110}"
python3 - $PORTS <<'PY'
import json, sys, urllib.request, urllib.error

def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
    except Exception as e:  # not running
        return None, {"error": str(e)}

names = {9100: "gateway", 9101: "user", 9102: "role", 9103: "card", 9104: "saldo",
         9105: "topup", 9106: "transfer", 9107: "withdraw", 9108: "merchant",
         9109: "transaction", 9110: "email"}
groups = []
print(f"{'process':<13} {'admin':>5}  ready")
for port in map(int, sys.argv[1:]):
    code, ready = get(port, "/readyz")
    name = names.get(port, "?")
    if code is None:
        print(f"{name:<13} {port:>5}  down ({ready['error']})")
        continue
    state = "yes" if code == 200 else "NO: " + json.dumps(ready.get("failures", {}))
    print(f"{name:<13} {port:>5}  {state}")
    _, status = get(port, "/status")
    for component, report in sorted(status.get("components", {}).items()):
        if component.startswith("consumer:"):
            groups.append((name, report))
print()
print(f"{'consumer group':<34} {'process':<12} {'state':<10} {'lag msgs':>9} {'lag s':>8} {'partitions':>10}")
for name, report in groups:
    d = report.get("detail", {})
    lag_s = d.get("lag_seconds")
    print(f"{d.get('group', '?'):<34} {name:<12} {d.get('state', '?'):<10} "
          f"{d.get('lag_messages', '-'):>9} {('%.1f' % lag_s) if lag_s is not None else '-':>8} "
          f"{d.get('assigned_partitions', '-'):>10}")
    if report.get("reason"):
        print(f"  ! {report['reason']}")
    for p in d.get("partitions", [])[:5]:
        print(f"    {p['topic']}[{p['partition']}] committed {p['committed']} of {p['high_watermark']}"
              f" ({p['lag_messages']} behind, oldest {p['lag_seconds'] or 0:.1f} s)")
if not groups:
    print("(no consumer reported yet: the watchdog's first measurement comes 10 s after start)")
PY
