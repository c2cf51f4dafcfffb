#!/usr/bin/env python3
"""A vLLM-like model server for tests: no model, no GPU, a latency law instead.

    vllm-standin.py MODEL --port PORT [--max-num-seqs 16] [--itl-base 0.02]
                    [--itl-per-request 0.004] [--prefill-per-token 0] [--startup 2]
                    [--registry DIR] [--records FILE]

It serves POST /v1/completions ({"prompt": ..., "max_tokens": N}) and GET /metrics with
vLLM's metric names (vllm:num_requests_running, vllm:num_requests_waiting,
vllm:request_success_total, vllm:prompt_tokens_total, vllm:generation_tokens_total and the
histograms vllm:time_to_first_token_seconds, vllm:inter_token_latency_seconds,
vllm:e2e_request_latency_seconds, vllm:request_queue_time_seconds, with vLLM's buckets), each
labelled model_name=MODEL.

The engine works as vLLM's continuous batching does: up to --max-num-seqs requests run at
once, the rest wait; every step gives each running request one token, and a step takes
itl-base + itl-per-request x (requests running) seconds, plus prefill-per-token for each
prompt token admitted in it. Steps are scheduled on a clock of their own (each starts where
the last ended), so a loaded machine that wakes the engine late delays no token's recorded
time and the law holds exactly in what is measured.

Like vLLM, it does not listen until it has "loaded" (--startup seconds). Once listening it
writes its port into --registry (the load generator routes only to ports there); on SIGTERM
it takes the port out, finishes every request it holds and exits 0. Each finished request
appends one JSON line to --records: arrival (Unix seconds), port, ttft_s, queue_s, e2e_s,
itl_s (every gap between tokens) and tokens.
"""

import argparse
import collections
import http.server
import json
import os
import signal
import socketserver
import threading
import time

TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
               20.0, 40.0, 80.0]
E2E_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]


class Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value):
        self.count += 1
        self.sum += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1

    def lines(self, name, labels):
        out = [f"# TYPE {name} histogram"]
        for bound, count in zip(self.buckets, self.counts):
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {count}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_count{{{labels}}} {self.count}")
        out.append(f"{name}_sum{{{labels}}} {self.sum}")
        return out


class Request:
    def __init__(self, prompt_tokens, max_tokens):
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.arrival = time.time()
        self.admitted = None
        self.token_times = []
        self.done = threading.Event()


class Engine:
    def __init__(self, options):
        self.options = options
        self.lock = threading.Condition()
        self.waiting = collections.deque()
        self.running = []
        self.finished = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.queue = Histogram(TTFT_BUCKETS)
        self.records = open(options.records, "a") if options.records else None
        threading.Thread(target=self.loop, daemon=True).start()

    def submit(self, request):
        with self.lock:
            self.waiting.append(request)
            self.lock.notify()

    def held(self):
        with self.lock:
            return len(self.waiting) + len(self.running)

    def loop(self):
        step_end = None
        while True:
            with self.lock:
                while not self.waiting and not self.running:
                    step_end = None
                    self.lock.wait()
                if step_end is None:
                    step_end = time.time()
                start = step_end
                admitted_tokens = 0
                while self.waiting and len(self.running) < self.options.max_num_seqs:
                    request = self.waiting.popleft()
                    request.admitted = max(start, request.arrival)
                    admitted_tokens += request.prompt_tokens
                    self.running.append(request)
                batch = len(self.running)
            step = (self.options.itl_base + self.options.itl_per_request * batch
                    + self.options.prefill_per_token * admitted_tokens)
            step_end = start + step
            delay = step_end - time.time()
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                still = []
                for request in self.running:
                    request.token_times.append(step_end)
                    if len(request.token_times) >= request.max_tokens:
                        self.finish(request)
                    else:
                        still.append(request)
                self.running = still

    def finish(self, request):
        times = request.token_times
        ttft = times[0] - request.arrival
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        self.finished += 1
        self.prompt_tokens += request.prompt_tokens
        self.generation_tokens += len(times)
        self.ttft.observe(ttft)
        self.queue.observe(request.admitted - request.arrival)
        self.e2e.observe(times[-1] - request.arrival)
        for gap in gaps:
            self.itl.observe(gap)
        if self.records:
            record = {"arrival": request.arrival, "port": self.options.port, "ttft_s": ttft,
                      "queue_s": request.admitted - request.arrival, "e2e_s": times[-1] - request.arrival,
                      "itl_s": gaps, "tokens": len(times)}
            self.records.write(json.dumps(record) + "\n")
            self.records.flush()
        request.done.set()

    def metrics(self):
        labels = f'model_name="{self.options.model}"'
        with self.lock:
            out = [
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{labels}}} {len(self.running)}",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{labels}}} {len(self.waiting)}",
                "# TYPE vllm:request_success_total counter",
                f'vllm:request_success_total{{finished_reason="length",{labels}}} {self.finished}',
                "# TYPE vllm:prompt_tokens_total counter",
                f"vllm:prompt_tokens_total{{{labels}}} {self.prompt_tokens}",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{labels}}} {self.generation_tokens}",
            ]
            out += self.ttft.lines("vllm:time_to_first_token_seconds", labels)
            out += self.itl.lines("vllm:inter_token_latency_seconds", labels)
            out += self.e2e.lines("vllm:e2e_request_latency_seconds", labels)
            out += self.queue.lines("vllm:request_queue_time_seconds", labels)
        return "\n".join(out) + "\n"


def handler_for(engine):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *arguments):
            pass

        def reply(self, status, body, kind="application/json"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/metrics":
                self.reply(200, engine.metrics(), "text/plain; version=0.0.4")
            elif self.path == "/health":
                self.reply(200, "{}")
            else:
                self.reply(404, '{"error": "not found"}')

        def do_POST(self):
            if self.path != "/v1/completions":
                self.reply(404, '{"error": "not found"}')
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                max_tokens = int(body.get("max_tokens", 16))
                prompt_tokens = len(str(body.get("prompt", "")).split())
                if max_tokens < 1:
                    raise ValueError("max_tokens must be at least 1")
            except (ValueError, TypeError) as error:
                self.reply(400, json.dumps({"error": str(error)}))
                return
            request = Request(prompt_tokens, max_tokens)
            engine.submit(request)
            request.done.wait()
            self.reply(200, json.dumps({
                "object": "text_completion", "model": engine.options.model,
                "choices": [{"index": 0, "text": " token" * max_tokens, "finish_reason": "length"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max_tokens},
            }))

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--itl-base", type=float, default=0.02)
    parser.add_argument("--itl-per-request", type=float, default=0.004)
    parser.add_argument("--prefill-per-token", type=float, default=0.0)
    parser.add_argument("--startup", type=float, default=2.0)
    parser.add_argument("--registry")
    parser.add_argument("--records")
    options = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if stop.wait(options.startup):
        return
    engine = Engine(options)
    server = Server((options.host, options.port), handler_for(engine))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    entry = os.path.join(options.registry, str(options.port)) if options.registry else None
    if entry:
        with open(entry + ".tmp", "w") as file:
            file.write(str(options.port))
        os.rename(entry + ".tmp", entry)
    stop.wait()
    if entry and os.path.exists(entry):
        os.remove(entry)
    # A request routed here just before the port left the registry is still served; the
    # drain ends when nothing has been held for a second, or after a minute at most.
    deadline = time.time() + 60
    quiet_since = None
    while time.time() < deadline:
        if engine.held() == 0:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= 1:
                break
        else:
            quiet_since = None
        time.sleep(0.05)
    server.shutdown()


if __name__ == "__main__":
    main()
