#!/usr/bin/env python3
"""A stand-in for Prometheus's instant-query API, for the fleet benchmark: every query is
answered with a vector of one series per deployment, `deployment="w00000"` and on, whose value
wanders a little each time it is asked, so that a few targets scale now and then and most hold.

    prometheus-stub.py --port PORT --deployments COUNT
"""

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"values": [], "queries": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this the body waits for the client's
    # delayed ACK (40 ms), which Prometheus does not add.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/-/queries"):
            body = json.dumps({"queries": STATE["queries"]}).encode()
        elif self.path.startswith("/api/v1/query"):
            now = time.time()
            with LOCK:
                STATE["queries"] += 1
                values = STATE["values"]
                # One deployment in a thousand moves by a replica's worth of work each query: a fleet in
                # its steady state, where a few targets change a tick and the rest hold.
                for _ in range(max(1, len(values) // 1000)):
                    index = random.randrange(len(values))
                    values[index] = max(0.0, values[index] + random.choice((-10.0, 10.0)))
                result = [
                    {"metric": {"deployment": "w%05d" % index}, "value": [now, repr(value)]}
                    for index, value in enumerate(values)
                ]
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--deployments", type=int, required=True)
    args = parser.parse_args()
    random.seed(1)
    # 20 jobs a replica at the target of 10: 2 replicas each to start with.
    STATE["values"] = [20.0] * args.deployments
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening", args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
