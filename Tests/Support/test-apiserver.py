#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server, for Capstan's tests.

No real API server runs on the test machines, so this one copies the parts of the API that
Capstan uses, with the same paths, objects and failure bodies:

- HTTPS only, with a certificate the test makes; bearer tokens (a rotated token answers 401
  until the client re-reads it) and, optionally, client certificates.
- Deployments, StatefulSets and custom resources with the /scale subresource (autoscaling/v1
  Scale); resourceVersion on every object and 409 Conflict for a write carrying a stale one.
- coordination.k8s.io/v1 Leases (create, get, update), core/v1 Events (create, list), core/v1
  ConfigMaps (create, get, update).
- Status bodies for 401, 403, 404, 409, 500 as the API server writes them; 429 as plain text
  with Retry-After, as API Priority and Fairness sends it; slow answers.
- LIST with the collection's resourceVersion, and WATCH from a resourceVersion (chunked JSON
  lines: ADDED, MODIFIED, DELETED, BOOKMARK with allowWatchBookmarks, and an ERROR event with a
  410 Expired Status for a resourceVersion older than the history kept), ending at
  timeoutSeconds. The test can drop every open watch and forget the history.

The test drives it through /_test/... (no authentication): objects, tokens, faults, and the
log of requests it answered.
"""

import argparse
import bisect
import copy
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

LOCK = threading.Lock()
# Notified whenever an object changes or the watches are dropped.
CHANGED = threading.Condition(LOCK)
WATCHED = {"deployments", "statefulsets"}
WATCH = {
    # (prefix, namespace, plural, name) -> resourceVersion last turned into an event
    "seen": {},
    # the watched objects written, created or deleted since the last note_changes
    "dirty": set(),
    # (prefix, namespace, plural) -> ([resourceVersion], [(resourceVersion, type, object)]),
    # in resourceVersion order, so a watch finds what is new by bisection
    "events": {},
    # a watch from a resourceVersion older than this is answered 410 Expired
    "oldest": 0,
    # bumped to drop every open watch, as a restarted or failed-over API server does
    "generation": 0,
    "bookmark_seconds": 1.0,
}
STATE = {
    "resource_version": 1000,
    # (api prefix, namespace, plural, name) -> object
    "objects": {},
    # group/version/plural -> kind, for custom resources
    "custom_kinds": {},
    # token -> user name
    "tokens": {},
    # user name -> list of "verb resource" it may not do, e.g. "update deployments/scale"
    "forbidden": {},
    "faults": [],
    "requests": [],
}

BUILTIN = {
    ("apis/apps/v1", "deployments"): ("Deployment", "apps"),
    ("apis/apps/v1", "statefulsets"): ("StatefulSet", "apps"),
    ("apis/coordination.k8s.io/v1", "leases"): ("Lease", "coordination.k8s.io"),
    ("api/v1", "events"): ("Event", ""),
    ("api/v1", "configmaps"): ("ConfigMap", ""),
}

PATH = re.compile(
    r"^/(?P<prefix>api/v1|apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>scale))?$"
)


def next_version():
    STATE["resource_version"] += 1
    return str(STATE["resource_version"])


def touched(key):
    """Marks an object as written, created or deleted, for the next note_changes. Called with
    LOCK held by everything that changes an object."""
    if key[2] in WATCHED:
        WATCH["dirty"].add(key)


def note_changes():
    """Turns every change to a watched object since the last call into a watch event, in
    resourceVersion order. Called with LOCK held after anything that may change objects; costs
    what changed, not what is stored, as a fleet of ten thousand Deployments needs."""
    seen = WATCH["seen"]
    batch = []
    for key in WATCH["dirty"]:
        obj = STATE["objects"].get(key)
        if obj is not None:
            version = obj["metadata"].get("resourceVersion")
            if seen.get(key) != version:
                kind = "ADDED" if key not in seen else "MODIFIED"
                seen[key] = version
                batch.append((int(version), kind, key[:3], copy.deepcopy(obj)))
        elif key in seen:
            del seen[key]
            batch.append((None, "DELETED", key[:3], {"metadata": {"name": key[3]}}))
    WATCH["dirty"] = set()
    # A deletion's version is the next one, after every write of this batch.
    batch = sorted((e for e in batch if e[0] is not None), key=lambda e: e[0]) + [
        (int(next_version()), kind, collection, obj) for (_, kind, collection, obj) in batch if kind == "DELETED"
    ]
    for version, kind, collection, obj in batch:
        versions, events = WATCH["events"].setdefault(collection, ([], []))
        versions.append(version)
        events.append((version, kind, obj))
    CHANGED.notify_all()


def events_after(collection, cursor):
    """The watch events of a collection after resourceVersion `cursor`. Called with LOCK held."""
    versions, events = WATCH["events"].get(collection, ([], []))
    return events[bisect.bisect_right(versions, cursor):]


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


MAX_CONFIGMAP_BYTES = 1024 * 1024


def status_body(code, reason, message, name=None, group=None, kind=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name is not None:
        body["details"] = {"name": name, "group": group, "kind": kind}
    return body


def kind_of(prefix, plural):
    if (prefix, plural) in BUILTIN:
        return BUILTIN[(prefix, plural)]
    gvp = prefix[len("apis/"):] + "/" + plural
    if gvp in STATE["custom_kinds"]:
        return STATE["custom_kinds"][gvp], prefix.split("/")[1]
    return None, None


def resource_name(prefix, plural):
    """deployments.apps, as the API server names a resource in its messages."""
    group = prefix.split("/")[1] if prefix.startswith("apis/") else ""
    return plural + ("." + group if group else "")


def scale_of(obj):
    spec = obj.get("spec", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": "app=" + obj["metadata"]["name"],
        },
    }


def merge(target, patch):
    """RFC 7386: a JSON merge patch; null removes a key."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def set_replicas(obj, replicas):
    obj.setdefault("spec", {})["replicas"] = replicas
    # The workload controller's part, done at once: every replica runs and is ready.
    status = obj.setdefault("status", {})
    # Go's omitempty: a count of 0 is left out, as the API server does.
    for field in ("replicas", "readyReplicas"):
        if replicas:
            status[field] = replicas
        else:
            status.pop(field, None)
    obj["metadata"]["resourceVersion"] = next_version()


def add_workload(body):
    """A workload whose pods are ready as soon as they are asked for (or `ready` of them)."""
    prefix, plural = body["api"], body["plural"]
    kind, _ = kind_of(prefix, plural)
    obj = {
        "apiVersion": prefix.split("/", 1)[1],
        "kind": kind,
        "metadata": {
            "name": body["name"],
            "namespace": body["namespace"],
            "uid": "uid-" + body["name"],
            "creationTimestamp": now_rfc3339(),
        },
        "spec": {
            "replicas": body["replicas"],
            "template": {"spec": {"containers": [{"name": "main", "image": "example"}]}},
        },
    }
    if "grace" in body:
        obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = body["grace"]
    set_replicas(obj, body["replicas"])
    if body.get("ready") is not None:
        # Pods still starting: fewer ready than asked for (omitempty at 0).
        if body["ready"]:
            obj["status"]["readyReplicas"] = body["ready"]
        else:
            obj["status"].pop("readyReplicas", None)
    key = (prefix, body["namespace"], plural, body["name"])
    STATE["objects"][key] = obj
    touched(key)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body then waits
    # for the client's delayed ACK, 40 ms on every answer, which no API server adds.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    # -- plumbing --

    def reply(self, code, body, content_type="application/json", headers=None):
        data = (json.dumps(body) if content_type == "application/json" else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null") if length else None

    def user(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return STATE["tokens"].get(auth[len("Bearer "):])
        cert = self.connection.getpeercert() if hasattr(self.connection, "getpeercert") else None
        if cert:
            for field in cert.get("subject", ()):
                for key, value in field:
                    if key == "commonName":
                        return value
        return None

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method):
        path = self.path.split("?", 1)[0]
        query = parse_qs(self.path.split("?", 1)[1]) if "?" in self.path else {}
        watch = query.get("watch", [""])[0] in ("1", "true")
        if path.startswith("/_test/"):
            return self.control(method, path)
        body = self.read_body() if method in ("POST", "PUT", "PATCH") else None
        with LOCK:
            user = self.user()
            entry = {"time": time.time(), "method": method, "path": path, "user": user, "watch": watch}
            STATE["requests"].append(entry)
            fault = self.take_fault(method, path)
        if fault and "race_replicas" in fault:
            # Someone else writes the object just before this request arrives.
            with LOCK:
                match = PATH.match(path)
                key = match.group("prefix", "ns", "plural", "name") if match else None
                obj = STATE["objects"].get(key) if key else None
                if obj is not None:
                    set_replicas(obj, fault["race_replicas"])
                    touched(key)
        # A slow answer is computed at once and sent late, as a slow network or an overloaded
        # apiserver would: what it says is the state when the request arrived.
        delay = fault.get("delay", 0) if fault else 0
        if fault and fault.get("status"):
            entry["status"] = fault["status"]
            time.sleep(delay)
            return self.reply_fault(fault)
        if user is None:
            entry["status"] = 401
            time.sleep(delay)
            return self.reply(401, status_body(401, "Unauthorized", "Unauthorized"))
        if watch and method == "GET":
            return self.watch(path, query, user, entry)
        with LOCK:
            code, reply = self.api(method, path, body, user)
            entry["status"] = code
            note_changes()
        time.sleep(delay)
        self.reply(code, reply)

    def watch(self, path, query, user, entry):
        match = PATH.match(path)
        if not match or match.group("name") or match.group("plural") not in WATCHED:
            entry["status"] = 404
            return self.reply(404, status_body(404, "NotFound", "the server could not find the requested resource"))
        collection = match.group("prefix", "ns", "plural")
        if "watch " + collection[2] in STATE["forbidden"].get(user, []):
            entry["status"] = 403
            message = f'{resource_name(collection[0], collection[2])} is forbidden: User "{user}" cannot watch resource "{collection[2]}"'
            return self.reply(403, status_body(403, "Forbidden", message))
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        bookmarks = query.get("allowWatchBookmarks", [""])[0] in ("1", "true")
        deadline = time.time() + float(query.get("timeoutSeconds", ["1800"])[0])
        entry["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(event):
            data = (json.dumps(event) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            with LOCK:
                generation = WATCH["generation"]
                if since < WATCH["oldest"]:
                    expired = status_body(
                        410, "Expired", f"too old resource version: {since} ({WATCH['oldest']})")
                    send({"type": "ERROR", "object": expired})
                    self.wfile.write(b"0\r\n\r\n")
                    return
            cursor = since
            last_bookmark = time.time()
            while time.time() < deadline:
                with LOCK:
                    pending = events_after(collection, cursor)
                    if not pending:
                        CHANGED.wait(timeout=0.2)
                        pending = events_after(collection, cursor)
                    dropped = WATCH["generation"] != generation
                    version = STATE["resource_version"]
                if dropped:
                    # Gone without a word, as when the API server's process dies.
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if pending:
                    # One write for all that is new: ten thousand ADDED events at a watch's start.
                    data = b"".join((json.dumps({"type": kind, "object": obj}) + "\n").encode() for (_, kind, obj) in pending)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    cursor = pending[-1][0]
                if bookmarks and time.time() - last_bookmark >= WATCH["bookmark_seconds"]:
                    cursor = max(cursor, version)
                    send({"type": "BOOKMARK", "object": {"kind": "Deployment", "metadata": {"resourceVersion": str(cursor)}}})
                    last_bookmark = time.time()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            return

    def take_fault(self, method, path):
        for fault in STATE["faults"]:
            if fault["count"] > 0 and fault.get("method", method) == method and re.search(fault["path"], path):
                fault["count"] -= 1
                return fault
        return None

    def reply_fault(self, fault):
        code = fault["status"]
        if code == 429:
            # API Priority and Fairness answers in plain text, not with a Status.
            return self.reply(
                429,
                "Too many requests, please try again later.\n",
                content_type="text/plain; charset=utf-8",
                headers={"Retry-After": str(fault.get("retry_after", 1))},
            )
        headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else None
        reason = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}.get(code, "InternalError")
        message = fault.get("message", "an error on the server (\"\") has prevented the request from succeeding")
        return self.reply(code, status_body(code, reason, message), headers=headers)

    # -- the API --

    def api(self, method, path, body, user):
        match = PATH.match(path)
        if not match:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        prefix, ns, plural, name, sub = match.group("prefix", "ns", "plural", "name", "sub")
        kind, group = kind_of(prefix, plural)
        if kind is None:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, "delete")
        resource = plural + ("/" + sub if sub else "")
        if verb + " " + resource in STATE["forbidden"].get(user, []):
            message = (
                f'{resource_name(prefix, plural)} "{name}" is forbidden: User "{user}" cannot {verb} resource '
                f'"{resource}" in API group "{group}" in the namespace "{ns}"'
            )
            return 403, status_body(403, "Forbidden", message, name, group, resource)
        objects = STATE["objects"]
        if plural == "configmaps" and method in ("POST", "PUT") and body is not None:
            # The API server's validation: a ConfigMap's data and binaryData, keys and values
            # together, hold at most 1 MiB.
            size = sum(
                len(k.encode()) + len(v.encode())
                for field in ("data", "binaryData")
                for k, v in (body.get(field) or {}).items()
            )
            if size > MAX_CONFIGMAP_BYTES:
                shown = name or (body.get("metadata") or {}).get("name")
                message = f'ConfigMap "{shown}" is invalid: []: Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes'
                return 422, status_body(422, "Invalid", message, shown, group, plural)
        if method == "POST" and name is None:
            return self.create(prefix, ns, plural, kind, body)
        if name is None and method == "GET":
            items = [o for (p, n, pl, _), o in sorted(objects.items()) if (p, n, pl) == (prefix, ns, plural)]
            return 200, {
                "kind": kind + "List",
                "apiVersion": prefix.split("/", 1)[1],
                "metadata": {"resourceVersion": str(STATE["resource_version"])},
                "items": items,
            }
        key = (prefix, ns, plural, name)
        obj = objects.get(key)
        if method != "GET":
            touched(key)
        if obj is None:
            return 404, status_body(404, "NotFound", f'{resource_name(prefix, plural)} "{name}" not found', name, group, plural)
        if method == "GET":
            return 200, scale_of(obj) if sub else obj
        if method == "PUT":
            sent = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if sent and sent != obj["metadata"]["resourceVersion"]:
                message = (
                    f'Operation cannot be fulfilled on {resource_name(prefix, plural)} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again"
                )
                return 409, status_body(409, "Conflict", message, name, group, plural)
            if sub:
                set_replicas(obj, int(body["spec"]["replicas"]))
                return 200, scale_of(obj)
            for field in ("spec", "data"):
                if field in body:
                    obj[field] = body[field]
            obj["metadata"]["resourceVersion"] = next_version()
            return 200, obj
        if method == "PATCH" and not sub:
            if self.headers.get("Content-Type") != "application/merge-patch+json":
                return 415, status_body(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
            merge(obj, body or {})
            obj["metadata"]["resourceVersion"] = next_version()
            return 200, obj
        return 405, status_body(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def create(self, prefix, ns, plural, kind, body):
        meta = body.setdefault("metadata", {})
        if "generateName" in meta and "name" not in meta:
            meta["name"] = meta["generateName"] + format(STATE["resource_version"], "x")
        name = meta.get("name")
        key = (prefix, ns, plural, name)
        if key in STATE["objects"]:
            group = prefix.split("/")[1] if prefix.startswith("apis/") else ""
            message = f'{resource_name(prefix, plural)} "{name}" already exists'
            return 409, status_body(409, "AlreadyExists", message, name, group, plural)
        meta.update(
            namespace=ns,
            uid="uid-" + name,
            resourceVersion=next_version(),
            creationTimestamp=now_rfc3339(),
        )
        body["kind"] = kind
        STATE["objects"][key] = body
        touched(key)
        return 201, body

    # -- control, for the test --

    def control(self, method, path):
        body = self.read_body() if method in ("POST", "PUT") else None
        with LOCK:
            if path == "/_test/tokens":
                STATE["tokens"] = body
            elif path == "/_test/forbidden":
                STATE["forbidden"] = body
            elif path == "/_test/faults":
                STATE["faults"] = body
            elif path == "/_test/custom-kinds":
                STATE["custom_kinds"].update(body)
            elif path == "/_test/workloads" and method == "POST":
                # One workload, or a list of them at once (the fleet benchmark's thousands).
                for one in body if isinstance(body, list) else [body]:
                    add_workload(one)
            elif path == "/_test/drop-watches":
                WATCH["generation"] += 1
                CHANGED.notify_all()
            elif path == "/_test/forget-history":
                # As etcd's compaction does: a watch must now start from a fresh LIST.
                WATCH["oldest"] = STATE["resource_version"] + 1
                WATCH["events"] = {}
            elif path == "/_test/delete" and method == "POST":
                key = (body["api"], body["namespace"], body["plural"], body["name"])
                STATE["objects"].pop(key, None)
                touched(key)
            elif path == "/_test/requests":
                return self.reply(200, STATE["requests"])
            elif path == "/_test/objects":
                items = [o for (_, _, _, _), o in sorted(STATE["objects"].items())]
                return self.reply(200, items)
            else:
                return self.reply(404, {"error": "no such control path " + path})
            note_changes()
        self.reply(200, {})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", help="accept client certificates signed by this CA")
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.load_verify_locations(args.client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("listening", args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
