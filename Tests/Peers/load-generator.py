#!/usr/bin/env python3
"""Open-loop load for vllm-standin.py replicas: Poisson arrivals at a rate read from a file.

    load-generator.py --registry DIR --records FILE --rate-file FILE
                      [--tokens 20] [--prompt-words 50] [--seed 1]

The rate file holds requests a second (write it whole, by renaming a new file onto it); the
generator reads it five times a second and follows it, and stops sending when it reads `stop`.
Arrivals do not wait for answers (users do not), so a pool too small for the load shows it as
waiting. Each request goes to the registered replica (a port file in DIR) with the fewest
requests this generator has outstanding there, as a least-request gateway routes; a replica
that refuses the connection (it has just stopped) is skipped and the request goes to another.

Each change of rate and each request's answer append one JSON line to --records:
{"phase": i, "start": unix seconds, "rate": r} and {"sent": unix seconds, "port": p,
"status": http status or 0, "seconds": round trip}. After `stop` it waits at most a minute for
the answers still out, then exits 0 if every request was answered with 200 and 1 if not.
"""

import argparse
import json
import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request


def main():
    # An ignored SIGTERM is inherited across exec; a test that stops the generator early must
    # still be able to.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--records", required=True)
    parser.add_argument("--rate-file", required=True)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--prompt-words", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    draw = random.Random(options.seed)
    lock = threading.Lock()
    outstanding = {}
    failures = [0]
    records = open(options.records, "a")
    body = json.dumps({"prompt": " ".join(["word"] * options.prompt_words),
                       "max_tokens": options.tokens}).encode()

    def write(record):
        with lock:
            records.write(json.dumps(record) + "\n")
            records.flush()

    def replicas():
        try:
            return sorted(int(name) for name in os.listdir(options.registry) if name.isdigit())
        except OSError:
            return []

    def send(sent):
        refused = set()
        status, port = 0, None
        for _ in range(100):
            with lock:
                ports = [p for p in replicas() if p not in refused]
                if not ports:
                    port = None
                else:
                    port = min(ports, key=lambda p: (outstanding.get(p, 0), p))
                    outstanding[port] = outstanding.get(port, 0) + 1
            if port is None:
                time.sleep(0.1)
                refused.clear()
                continue
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/completions", data=body,
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=120) as answer:
                    answer.read()
                    status = answer.status
            except urllib.error.HTTPError as error:
                status = error.code
            except (urllib.error.URLError, ConnectionError, OSError):
                refused.add(port)
                status = 0
            finally:
                with lock:
                    outstanding[port] -= 1
            if status != 0:
                break
        if status != 200:
            with lock:
                failures[0] += 1
        write({"sent": sent, "port": port, "status": status, "seconds": time.time() - sent})

    def read_rate():
        try:
            with open(options.rate_file) as file:
                text = file.read().strip()
        except OSError:
            return None
        if text == "stop":
            return "stop"
        try:
            rate = float(text)
        except ValueError:
            return None
        return rate if rate >= 0 else None

    threads = []
    rate, phase, due = 0.0, -1, None
    while True:
        now = time.time()
        read = read_rate()
        if read == "stop":
            break
        if read is not None and read != rate or phase < 0:
            rate = read if read is not None else rate
            phase += 1
            write({"phase": phase, "start": now, "rate": rate})
            due = now + draw.expovariate(rate) if rate > 0 else None
        while due is not None and due <= now:
            thread = threading.Thread(target=send, args=(due,), daemon=True)
            thread.start()
            threads.append(thread)
            due += draw.expovariate(rate)
        wake = now + 0.2 if due is None else min(now + 0.2, due)
        time.sleep(max(wake - time.time(), 0))
    deadline = time.time() + 60
    for thread in threads:
        thread.join(max(deadline - time.time(), 0))
    unanswered = sum(thread.is_alive() for thread in threads)
    print(f"{len(threads)} requests, {failures[0]} failed, {unanswered} unanswered")
    raise SystemExit(1 if failures[0] or unanswered else 0)


if __name__ == "__main__":
    main()
