"""Constructed labelled transaction sets that differ from the simulator.

* :func:`write_paysim`: a mobile-money week in PaySim's CSV: payments, cash-in/out,
  transfers and debits with balances; account takeovers (a TRANSFER that empties the
  victim's account into a fresh mule account, then the mule's CASH_OUT of the same
  amount), half of the victims never seen before; benign accounts that empty
  themselves with a CASH_OUT and occasional large legitimate transfers.
* :func:`write_amlsim`: a year of an AMLSim-style export (``transactions.csv``,
  ``accounts.csv``, ``alerts.csv``): regular payments between accounts, three fan-in
  typologies (8-14 senders into one beneficiary within days) and one cycle; benign
  fan-in look-alikes (a landlord's monthly rents, a charity's donations).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path


def write_paysim(path: Path, seed: int = 4, scale: float = 1.0, steps: int = 168) -> int:
    """Write the PaySim-style CSV; return the number of transactions."""
    r = random.Random(seed)
    customers = [f"C{r.randint(10**8, 10**9 - 1)}" for _ in range(int(1500 * scale) + 50)]
    merchants = [f"M{r.randint(10**8, 10**9 - 1)}" for _ in range(200)]
    balance = {c: round(r.lognormvariate(8.5, 1.2), 2) for c in customers}
    rows: list[list[object]] = []

    def tx(step: int, typ: str, amount: float, orig: str, dest: str, fraud: int) -> None:
        amount = round(max(0.01, amount), 2)
        ob = balance.get(orig, 0.0)
        nb = round(max(0.0, ob - amount) if typ != "CASH_IN" else ob + amount, 2)
        od = balance.get(dest, 0.0) if not dest.startswith("M") else 0.0
        nd = round(od + amount, 2) if not dest.startswith("M") else 0.0
        balance[orig] = nb
        if not dest.startswith("M"):
            balance[dest] = nd
        rows.append([step, typ, f"{amount:.2f}", orig, f"{ob:.2f}", f"{nb:.2f}", dest,
                     f"{od:.2f}", f"{nd:.2f}", fraud, 0])

    # Activity follows the hour of day (steps are hours).
    for step in range(1, steps + 1):
        hour = step % 24
        busy = 0.25 if hour < 7 else 1.0 if hour < 20 else 0.5
        for _ in range(int(len(customers) * 0.04 * busy)):
            c = r.choice(customers)
            kind = r.choices(("PAYMENT", "CASH_IN", "CASH_OUT", "TRANSFER", "DEBIT"),
                             (0.45, 0.2, 0.2, 0.1, 0.05))[0]
            if kind == "PAYMENT":
                tx(step, kind, r.lognormvariate(5.5, 1.0), c, r.choice(merchants), 0)
            elif kind == "CASH_IN":
                tx(step, kind, r.lognormvariate(7.0, 1.0), c, r.choice(customers), 0)
            elif kind == "CASH_OUT":
                # 5 % of cash-outs empty the account: the benign look-alike of a takeover.
                whole = r.random() < 0.05
                amt = balance[c] if whole else balance[c] * r.uniform(0.05, 0.5)
                tx(step, kind, amt, c, r.choice(customers), 0)
            elif kind == "TRANSFER":
                big = r.random() < 0.02
                amt = balance[c] * r.uniform(0.6, 0.9) if big else r.lognormvariate(7.5, 1.0)
                tx(step, kind, amt, c, r.choice(customers), 0)
            else:
                tx(step, kind, r.lognormvariate(6.0, 0.8), c, r.choice(customers), 0)
        # Takeovers, about one every four hours; half the victims are first seen here.
        if r.random() < 0.25 * max(scale, 0.3):
            if r.random() < 0.5:
                victim = f"C{r.randint(10**8, 10**9 - 1)}"
                balance[victim] = round(r.lognormvariate(10.5, 1.0), 2)
            else:
                victim = r.choice(customers)
            mule = f"C{r.randint(10**8, 10**9 - 1)}"
            amount = balance[victim]
            if amount < 100:
                continue
            tx(step, "TRANSFER", amount, victim, mule, 1)
            later = min(steps, step + r.choice((0, 0, 1, 2)))
            rows.append([later, "CASH_OUT", f"{amount:.2f}", mule, f"{amount:.2f}", "0.00",
                         r.choice(customers), "0.00", f"{amount:.2f}", 1, 0])
    rows.sort(key=lambda row: int(row[0]))  # PaySim files are in step order
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "type", "amount", "nameOrig", "oldbalanceOrg", "newbalanceOrig",
                    "nameDest", "oldbalanceDest", "newbalanceDest", "isFraud",
                    "isFlaggedFraud"])
        w.writerows(rows)
    return len(rows)


def write_amlsim(directory: Path, seed: int = 5, scale: float = 1.0, days: int = 365) -> int:
    """Write ``transactions.csv``, ``accounts.csv`` and ``alerts.csv``; return the number
    of transactions."""
    r = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    n_acc = int(300 * scale) + 40
    accounts = [str(i) for i in range(n_acc)]
    txs: list[tuple[int, str, str, float, int, int]] = []  # step, from, to, amount, sar, alert
    # Regular behaviour: each account pays 1-4 counterparties on a schedule.
    for a in accounts:
        for _ in range(r.randint(1, 4)):
            b = r.choice(accounts)
            if b == a:
                continue
            every = r.choice((7, 14, 30, 30))
            amt = r.lognormvariate(6.0, 0.9)
            for day in range(r.randint(0, every), days, every):
                txs.append((day, a, b, amt * r.uniform(0.9, 1.1), 0, -1))
        for _ in range(r.randint(2, 12)):  # occasional one-off payments
            txs.append((r.randrange(days), a, r.choice(accounts), r.lognormvariate(6.5, 1.2),
                        0, -1))
    landlord, charity = accounts[1], accounts[2]
    tenants = r.sample(accounts[10:], 15)
    for month in range(0, days, 30):
        for t in tenants:
            txs.append((month + r.randint(0, 2), t, landlord, 950 * r.uniform(0.95, 1.05), 0,
                        -1))
    for day in r.sample(range(days), 40):
        txs.append((day, r.choice(accounts[10:]), charity, r.lognormvariate(4.0, 1.0), 0, -1))
    alerts: list[tuple[int, str]] = []
    sar_accounts: set[str] = set()
    pool = accounts[40:]
    lo, hi = days // 6, max(days // 6 + 1, days - days // 6 - 7)
    for k in range(3):  # fan-in: many senders into one beneficiary within days
        aid = k + 1
        bene = r.choice(pool)
        senders = r.sample([a for a in pool if a != bene], r.randint(8, 14))
        start = r.randrange(lo, hi)
        for s in senders:
            txs.append((start + r.randint(0, 6), s, bene, r.uniform(2000, 9500), 1, aid))
        sar_accounts.update([*senders, bene])
        alerts.append((aid, "fan_in"))
    ring = r.sample(pool, 5)  # cycle: money returns to its origin through four hops
    start, amt = r.randrange(lo, hi), r.uniform(20000, 40000)
    for i, a in enumerate(ring):
        txs.append((start + i, a, ring[(i + 1) % len(ring)], amt * (0.98 ** i), 1, 4))
    sar_accounts.update(ring)
    alerts.append((4, "cycle"))
    txs.sort(key=lambda t: t[0])
    types = dict(alerts)
    with open(directory / "transactions.csv", "w", encoding="utf-8", newline="") as f, \
            open(directory / "alerts.csv", "w", encoding="utf-8", newline="") as g:
        w, wa = csv.writer(f), csv.writer(g)
        w.writerow(["TX_ID", "SENDER_ACCOUNT_ID", "RECEIVER_ACCOUNT_ID", "TX_TYPE",
                    "TX_AMOUNT", "TIMESTAMP", "IS_FRAUD", "ALERT_ID"])
        wa.writerow(["ALERT_ID", "ALERT_TYPE", "IS_FRAUD", "TX_ID", "SENDER_ACCOUNT_ID",
                     "RECEIVER_ACCOUNT_ID", "TX_TYPE", "TX_AMOUNT", "TIMESTAMP"])
        for i, (day, a, b, amount, sar, aid) in enumerate(txs, start=1):
            row = [i, a, b, "TRANSFER", f"{amount:.2f}", day, "True" if sar else "False", aid]
            w.writerow(row)
            if sar:
                wa.writerow([aid, types[aid], "True", i, a, b, "TRANSFER", f"{amount:.2f}",
                             day])
    with open(directory / "accounts.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ACCOUNT_ID", "CUSTOMER_ID", "INIT_BALANCE", "COUNTRY", "ACCOUNT_TYPE",
                    "IS_FRAUD", "TX_BEHAVIOR_ID"])
        for a in accounts:
            w.writerow([a, f"C_{a}", f"{r.uniform(50000, 100000):.2f}", "US", "SAV",
                        "True" if a in sar_accounts else "False", 1])
    return len(txs)
