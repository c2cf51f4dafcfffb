#!/usr/bin/env python3
"""A worker that keeps to its share of an LLM provider's rate limit.

Capstan divides the provider's limits (times the safety margin) among the replicas of every
process on that provider and writes each process's share per replica to a JSON file, replaced
atomically whenever the replica count changes. The local backend starts each replica with the
file's path in CAPSTAN_SHARE_FILE (and its values in CAPSTAN_SHARE_*). In Kubernetes, read the
same JSON from Capstan's /shares endpoint instead.

This worker reads the file before every call, so it slows down as soon as more replicas
share the limit, and paces its calls to its requests per minute and its concurrency.
Each call is a line appended to CALLS (a stand-in for the provider) in this example.
"""
import json
import os
import signal
import sys
import time

stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)


def share():
    """The current share; the last one read if the file is missing or mid-write elsewhere."""
    path = os.environ.get("CAPSTAN_SHARE_FILE")
    if path:
        try:
            with open(path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            pass
    # Before the first file: what the replica was started with.
    value = os.environ.get("CAPSTAN_SHARE_REQUESTS_PER_MINUTE")
    return {"requests_per_minute": float(value)} if value else {}


def call_provider():
    """One request to the provider: here, a line with the time in the CALLS file."""
    with open(os.environ["CALLS"], "a") as calls:
        calls.write(f"{time.time():.6f} {os.environ.get('CAPSTAN_REPLICA', '0')}\n")


def main():
    last = {}
    while not stopping:
        current = share() or last
        last = current
        per_minute = current.get("requests_per_minute")
        if not per_minute:
            time.sleep(1)  # no share yet: wait for one rather than guess
            continue
        call_provider()
        # One call per 60 / rpm seconds: a delayed worker sends later, never in a burst.
        time.sleep(60.0 / per_minute)
    return 0


if __name__ == "__main__":
    sys.exit(main())
