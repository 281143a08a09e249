"""Samples and reports for `make soak` (deploy/local/soak.sh).

  soak_sample.py sample DATABASE_URL OUT.jsonl KAFKA_PID_FILE   every 5 s, until killed
  soak_sample.py settle DATABASE_URL TIMEOUT_SECONDS            until outboxes and lag are empty
  soak_sample.py report OUT.jsonl LOAD_END SETTLED RESTART_AT   the figures
  soak_sample.py books DATABASE_URL                             what the events built, checked
  soak_sample.py rollups DATABASE_URL                           fails while a rollup is behind
                                                                (also `make bench-stats`)

A sample: events published per topic (sent outbox rows of every schema), unsent outbox rows,
events consumed per group (`events_consumed_total` of every admin port), lag per group (its
watchdog's `/status`: broker high watermark − committed offset, oldest unconsumed age), and the
broker's CPU seconds and RSS.
"""

import json
import re
import subprocess
import sys
import time
import urllib.request

ADMIN_PORTS = range(9100, 9111)
TICK = 5


def psql(url, sql):
    return subprocess.run(["psql", url, "-tAc", sql], capture_output=True, text=True, check=True).stdout


def outboxes(url):
    schemas = [s for s in psql(url, "SELECT table_schema FROM information_schema.tables "
                                     "WHERE table_name = 'outbox'").split() if s]
    if not schemas:
        return {}, 0
    union = " UNION ALL ".join(f"SELECT topic, sent_at FROM {s}.outbox" for s in schemas)
    published, unsent = {}, 0
    for line in psql(url, f"SELECT topic, count(*) FILTER (WHERE sent_at IS NOT NULL), "
                          f"count(*) FILTER (WHERE sent_at IS NULL) FROM ({union}) o GROUP BY topic").splitlines():
        topic, sent, pending = line.split("|")
        published[topic] = int(sent)
        unsent += int(pending)
    return published, unsent


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.read().decode()
    except Exception:
        return None


def consumers():
    lag, consumed = {}, {}
    for port in ADMIN_PORTS:
        status = get(port, "/status")
        if status:
            for name, report in json.loads(status).get("components", {}).items():
                if name.startswith("consumer:"):
                    d = report.get("detail", {})
                    lag[d.get("group", name)] = {"messages": d.get("lag_messages"),
                                                 "seconds": d.get("lag_seconds"),
                                                 "state": d.get("state")}
        metrics = get(port, "/metrics")
        for line in (metrics or "").splitlines():
            m = re.match(r'events_consumed_total\{(.*)\} ([0-9.e+]+)', line)
            if m:
                group = re.search(r'group="([^"]*)"', m.group(1)).group(1)
                consumed[group] = consumed.get(group, 0) + float(m.group(2))
    return lag, consumed


def broker(pid_file):
    try:
        pid = open(pid_file).read().strip()
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / 100
        rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")) // 1024
        return {"pid": pid, "cpu_s": cpu, "rss_mib": rss}
    except Exception:
        return None


def sample(url, out, pid_file):
    start = time.time()
    with open(out, "a") as f:
        while True:
            published, unsent = outboxes(url)
            lag, consumed = consumers()
            f.write(json.dumps({"t": round(time.time() - start, 1), "published": published, "unsent": unsent,
                                "lag": lag, "consumed": consumed, "broker": broker(pid_file)}) + "\n")
            f.flush()
            time.sleep(TICK)


def settle(url, timeout):
    deadline, clean = time.time() + timeout, 0
    while time.time() < deadline:
        _, unsent = outboxes(url)
        lag, _ = consumers()
        zero = unsent == 0 and lag and all(v["messages"] == 0 for v in lag.values())
        clean = clean + 1 if zero else 0
        if clean >= 2:
            return
        time.sleep(2)
    sys.exit(f"lag did not return to zero within {timeout} s: {lag}, {unsent} unsent")


def report(path, load_end, settled, restart_at):
    samples = [json.loads(l) for l in open(path) if l.strip()]
    if len(samples) < 2:
        sys.exit("too few samples")
    first, last = samples[0], samples[-1]
    span = last["t"] - first["t"] or 1
    zero = (f"zero lag at {settled} s ({int(settled) - int(load_end)} s after the load)"
            if int(settled) >= 0 else "lag NOT back to zero 600 s after the load")
    print(f"\nsoak: {span:.0f} s sampled, load over at {load_end} s, broker restarted at {restart_at} s, "
          f"{zero}\n")
    print(f"{'topic':<32} {'published':>10} {'avg/s':>8} {'peak/s':>8}")
    for topic in sorted(last["published"]):
        counts = [s["published"].get(topic, 0) for s in samples]
        peak = max((b - a) / TICK for a, b in zip(counts, counts[1:]))
        print(f"{topic:<32} {counts[-1]:>10} {counts[-1] / span:>8.1f} {peak:>8.1f}")
    print(f"\n{'consumer group':<32} {'consumed':>10} {'avg/s':>8} {'peak lag':>9} {'peak lag s':>10} {'final lag':>9}")
    for group in sorted(last["lag"]):
        consumed = last["consumed"].get(group, 0)
        lags = [s["lag"].get(group, {}) for s in samples]
        peak = max((l.get("messages") or 0) for l in lags)
        peak_s = max((l.get("seconds") or 0) for l in lags)
        final = last["lag"][group]["messages"]
        print(f"{group:<32} {consumed:>10.0f} {consumed / span:>8.1f} {peak:>9} {peak_s:>10.1f} {final:>9}")
    cpu, rss = {}, 0
    for s in samples:
        if s["broker"]:
            cpu[s["broker"]["pid"]] = s["broker"]["cpu_s"]
            rss = max(rss, s["broker"]["rss_mib"])
    print(f"\nbroker: {sum(cpu.values()):.1f} CPU s over {len(cpu)} process(es), peak RSS {rss} MiB; "
          f"peak unsent outbox rows {max(s['unsent'] for s in samples)}")


# What the consumers built from events, against the rows the events came from: each check's
# two sides must be equal. Counted-row tables have one row per source row (primary keys), so
# equal counts mean every row was counted once: none lost, none doubled.
# The statistics rollups: every completed row of a source counted once.
ROLLUPS = [
    *[(f"every completed {name} counted once ({schema}.stats_counted)",
       f"SELECT count(*) FROM {schema}.{table} WHERE status <> 'pending'",
       f"SELECT count(*) FROM {schema}.stats_counted")
      for name, schema, table in [("top-up", "topup_svc", "movements"),
                                  ("withdrawal", "withdraw_svc", "movements"),
                                  ("transfer", "transfer_svc", "movements"),
                                  ("payment", "transaction_svc", "payments")]],
    ("every journal line of a card or merchant counted once (saldo_svc.balance_counted)",
     "SELECT count(*) FROM saldo_svc.journal_lines l JOIN saldo_svc.accounts a "
     "ON a.id = l.account_id WHERE a.kind <> 'system'",
     "SELECT count(*) FROM saldo_svc.balance_counted"),
]

BOOKS = [
    ("every card has its ledger account (saldo-service.card-events)",
     "SELECT count(*) FROM card_svc.cards",
     "SELECT count(*) FROM saldo_svc.accounts WHERE kind = 'card'"),
    ("every user has a role (role-service.user-events)",
     "SELECT count(*) FROM user_svc.users",
     "SELECT count(DISTINCT user_id) FROM role_svc.user_roles"),
    *ROLLUPS,
    ("card balances = the sum of the daily balance statistics",
     "SELECT coalesce(sum(balance), 0) FROM saldo_svc.accounts WHERE kind = 'card'",
     "SELECT coalesce(sum(delta), 0) FROM saldo_svc.balance_daily WHERE scope = 'card'"),
    ("merchant balances = the sum of the daily balance statistics",
     "SELECT coalesce(sum(balance), 0) FROM saldo_svc.accounts WHERE kind = 'merchant'",
     "SELECT coalesce(sum(delta), 0) FROM saldo_svc.balance_daily WHERE scope = 'merchant'"),
    ("every user got their account email (email-service.account)",
     "SELECT count(*) FROM user_svc.users",
     "SELECT count(DISTINCT recipient) FROM email_svc.deliveries "
     "WHERE template IN ('account_created', 'verify_email') AND status = 'sent'"),
    ("every email claimed was sent (none failed, unknown or stuck sending)",
     "SELECT count(*) FROM email_svc.deliveries",
     "SELECT count(*) FROM email_svc.deliveries WHERE status = 'sent'"),
]


def books(url):
    failed = 0
    print("\nwhat the events built:")
    for what, source, built in BOOKS:
        a, b = psql(url, source).strip(), psql(url, built).strip()
        ok = a == b
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {a}{' = ' if ok else ' vs '}{b}")
    if failed:
        sys.exit(f"{failed} check(s) failed")


def rollups(url):
    behind = sum(int(psql(url, source)) - int(psql(url, built)) for _, source, built in ROLLUPS)
    print(f"rollups: {behind} movements and postings not counted yet")
    if behind:
        sys.exit(1)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "sample":
        sample(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == "settle":
        settle(sys.argv[2], int(sys.argv[3]))
    elif command == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif command == "books":
        books(sys.argv[2])
    elif command == "rollups":
        rollups(sys.argv[2])
    else:
        sys.exit(__doc__)
