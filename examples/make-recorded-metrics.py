#!/usr/bin/env python3
"""Make examples/llm-day.csv, a day of recorded metrics, from the Azure LLM inference traces.

Source: the Azure Public Dataset (Azure/AzurePublicDataset), AzureLLMInferenceTrace_conv.csv and
AzureLLMInferenceTrace_code.csv, CC-BY 4.0. Attribution: P. Patel et al., "Splitwise: Efficient
Generative LLM Inference Using Phase Splitting", ISCA 2024.

What is real and what is modelled:
- Arrivals and token counts are the traces' own. Each trace covers one hour (57-58 minutes), so
  it is TILED 24 times to make a day, and each copy is thinned by a diurnal factor (0.2 at 04:00
  to 1.4 at 16:00, above 1 by repeating requests) so the day has a night and a peak.
- The conversation trace feeds `inference`, a self-hosted model server recorded running a fixed
  4 replicas; the code trace feeds `agent-worker`, a queue worker recorded running a fixed 2.
  Queues, latency and utilization come from a simple fluid FIFO model of those fixed fleets
  (the constants below), not from a real server.
- gpu_utilization is blanked from 09:00 to 09:05 to stand for a dead exporter, so the replay
  shows what missing data does (nothing scales down on it).

Usage: python3 examples/make-recorded-metrics.py examples/traces > examples/llm-day.csv
The output is the same on every run (fixed seed).
"""
import csv
import math
import random
import sys
from collections import deque
from datetime import datetime, timezone

DAY = datetime(2023, 11, 16, tzinfo=timezone.utc)
SECONDS = 86_400
ROW = 60

# inference: a model server; work per request in decode-token equivalents.
INFERENCE_REPLICAS = 4
INFERENCE_UNITS_PER_SECOND = 600  # per replica
# agent-worker: each job holds a slot while it calls an LLM API.
WORKER_REPLICAS = 2
WORKER_SLOTS = 2  # per replica
PRICE_IN, PRICE_OUT = 3e-6, 15e-6  # USD per token, the agent's LLM provider


def diurnal(second):
    hour = second / 3600
    return 0.2 + 1.2 * (0.5 - 0.5 * math.cos(2 * math.pi * (hour - 4) / 24))


def load(path):
    rows = []
    with open(path) as handle:
        for row in csv.DictReader(handle):
            stamp = datetime.strptime(row["TIMESTAMP"][:26], "%Y-%m-%d %H:%M:%S.%f")
            rows.append((stamp, int(row["ContextTokens"]), int(row["GeneratedTokens"])))
    start = rows[0][0]
    return [((stamp - start).total_seconds(), ctx, gen) for stamp, ctx, gen in rows]


def tile(trace, rng):
    """24 copies of an hour, each request kept (or repeated) by the diurnal factor."""
    arrivals = []
    for hour in range(24):
        for offset, ctx, gen in trace:
            at = hour * 3600 + offset
            if at >= SECONDS:
                continue
            factor = diurnal(at)
            copies = int(factor) + (1 if rng.random() < factor - int(factor) else 0)
            for _ in range(copies):
                arrivals.append((at + rng.random() * 0.5, ctx, gen))
    arrivals.sort()
    return arrivals


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "examples/traces"
    rng = random.Random(20231116)
    conv = tile(load(f"{folder}/AzureLLMInferenceTrace_conv.csv"), rng)
    code = tile(load(f"{folder}/AzureLLMInferenceTrace_code.csv"), rng)

    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["timestamp", "request_rate", "request_queue_depth", "p95_latency", "gpu_utilization",
                  "token_throughput", "inference.replicas", "queue_depth", "oldest_message_age",
                  "llm_cost_usd_per_hour", "agent-worker.replicas"])

    inf_queue = deque()  # [arrival, remaining units, ctx, gen, started]
    work_queue = deque()  # [arrival, remaining slot-seconds, cost]
    ci = wi = 0
    minute = {"arrivals": 0, "served": 0.0, "tokens": 0, "latencies": [], "cost": 0.0}
    for second in range(SECONDS):
        while ci < len(conv) and conv[ci][0] < second + 1:
            at, ctx, gen = conv[ci]
            inf_queue.append([at, ctx * 0.1 + gen, ctx, gen, None])
            minute["arrivals"] += 1
            ci += 1
        capacity = INFERENCE_REPLICAS * INFERENCE_UNITS_PER_SECOND
        left = capacity
        while inf_queue and left > 0:
            head = inf_queue[0]
            if head[4] is None:
                head[4] = max(head[0], second)
            take = min(left, head[1])
            head[1] -= take
            left -= take
            if head[1] <= 1e-9:
                inf_queue.popleft()
                wait = head[4] - head[0]
                minute["latencies"].append(wait + head[2] / 8000 + head[3] / 45)
                minute["tokens"] += head[3]
        minute["served"] += capacity - left

        while wi < len(code) and code[wi][0] < second + 1:
            at, ctx, gen = code[wi]
            work_queue.append([at, 0.5 + ctx / 8000 + gen / 50, ctx * PRICE_IN + gen * PRICE_OUT, False])
            wi += 1
        slots = WORKER_REPLICAS * WORKER_SLOTS
        while work_queue and slots > 0:
            head = work_queue[0]
            head[3] = True
            take = min(slots, head[1])
            head[1] -= take
            slots -= take
            if head[1] <= 1e-9:
                work_queue.popleft()
                minute["cost"] += head[2]

        if (second + 1) % ROW == 0:
            stamp = datetime.fromtimestamp(DAY.timestamp() + second + 1 - ROW, tz=timezone.utc)
            waiting = [job for job in inf_queue if job[4] is None]
            pending = [job for job in work_queue if not job[3]]
            p95 = percentile(minute["latencies"], 0.95)
            utilization = 100 * minute["served"] / (capacity * ROW)
            outage = 9 * 3600 <= second < 9 * 3600 + 300
            out.writerow([
                stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                f"{minute['arrivals'] / ROW:.3f}",
                len(waiting),
                "" if p95 is None else f"{p95:.2f}",
                "" if outage else f"{utilization:.1f}",
                f"{minute['tokens'] / ROW:.1f}",
                INFERENCE_REPLICAS,
                len(pending),
                f"{(second + 1 - pending[0][0]) if pending else 0:.0f}",
                f"{minute['cost'] * 3600 / ROW:.2f}",
                WORKER_REPLICAS,
            ])
            minute = {"arrivals": 0, "served": 0.0, "tokens": 0, "latencies": [], "cost": 0.0}


if __name__ == "__main__":
    main()
