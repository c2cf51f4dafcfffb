#!/usr/bin/env python3
"""Writes day.csv: one made-up day (2023-11-16, UTC, a row a minute) of two tenants' queues and
acme's LLM spend, for replaying policy.yaml. Fixed seed: the same file every run."""
import math
import random

random.seed(7)
rows = ["timestamp,acme_queue,globex_queue,acme_llm_spend"]
for minute in range(24 * 60):
    hour = minute / 60
    # acme's agents follow US office hours (16:00 to 01:00 UTC); globex's batch jobs arrive in
    # two bursts a day, at 06:00 and 18:00 UTC.
    office = max(0.0, math.sin(math.pi * ((hour - 16) % 24) / 9)) if (hour - 16) % 24 < 9 else 0.0
    acme = 15 + 110 * office + random.gauss(0, 6)
    def near(center):
        distance = abs(hour - center) % 24
        return min(distance, 24 - distance)

    burst = math.exp(-near(6) ** 2 / 2) + math.exp(-near(18) ** 2 / 2)
    globex = 40 + 220 * burst + random.gauss(0, 10)
    spend = 2 + acme / 8
    time = f"2023-11-16T{minute // 60:02d}:{minute % 60:02d}:00Z"
    rows.append(f"{time},{max(0, round(acme))},{max(0, round(globex))},{max(0, spend):.2f}")
with open("day.csv", "w") as out:
    out.write("\n".join(rows) + "\n")
