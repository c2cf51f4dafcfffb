#!/usr/bin/env python3
"""A KEDA-side peer of Capstan's external scaler, built from proto/externalscaler.proto by
Python's grpcio-tools, as KEDA's own client is built from the same file by Go's.

Usage: keda-peer.py ADDRESS CALL PROCESS [COUNT]
  spec PROCESS               GetMetricSpec
  metrics PROCESS            GetMetrics
  active PROCESS             IsActive
  stream PROCESS             StreamIsActive: a line per message as it arrives, until it ends
  concurrent PROCESS COUNT   COUNT clients at once, each on a connection of its own, each
                             calling GetMetricSpec, GetMetrics and IsActive
An empty PROCESS sends no 'process' key. Every answer is one JSON line on standard output;
a gRPC error is {"ok": false, "code": ..., "details": ...}.
"""

import json
import os
import sys
import tempfile
import threading

import grpc
from grpc_tools import protoc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_stubs():
    out = tempfile.mkdtemp(prefix="keda-peer-")
    proto_dir = os.path.join(ROOT, "proto")
    status = protoc.main([
        "protoc", f"--proto_path={proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
        os.path.join(proto_dir, "externalscaler.proto"),
    ])
    if status != 0:
        sys.exit(f"keda-peer: protoc failed with {status}")
    sys.path.insert(0, out)
    import externalscaler_pb2
    import externalscaler_pb2_grpc
    return externalscaler_pb2, externalscaler_pb2_grpc


pb, pb_grpc = load_stubs()
lock = threading.Lock()


def emit(record):
    with lock:
        print(json.dumps(record, sort_keys=True), flush=True)


def ref(process):
    metadata = {"process": process} if process else {}
    return pb.ScaledObjectRef(name="worker-scaler", namespace="ai", scalerMetadata=metadata)


def call(stub, name, process):
    try:
        if name == "spec":
            answer = stub.GetMetricSpec(ref(process), timeout=10)
            specs = [{"metricName": s.metricName, "targetSize": s.targetSize,
                      "targetSizeFloat": s.targetSizeFloat} for s in answer.metricSpecs]
            return {"call": name, "ok": True, "specs": specs}
        if name == "metrics":
            request = pb.GetMetricsRequest(scaledObjectRef=ref(process), metricName=f"capstan-{process}")
            answer = stub.GetMetrics(request, timeout=10)
            values = [{"metricName": v.metricName, "metricValue": v.metricValue,
                       "metricValueFloat": v.metricValueFloat} for v in answer.metricValues]
            return {"call": name, "ok": True, "values": values}
        if name == "active":
            return {"call": name, "ok": True, "result": stub.IsActive(ref(process), timeout=10).result}
        raise SystemExit(f"keda-peer: unknown call {name}")
    except grpc.RpcError as error:
        return {"call": name, "ok": False, "code": error.code().name, "details": error.details()}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    address, name, process = sys.argv[1], sys.argv[2], sys.argv[3]
    if name == "stream":
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            try:
                for message in stub.StreamIsActive(ref(process)):
                    emit({"call": name, "ok": True, "result": message.result})
                emit({"call": name, "ok": True, "ended": True})
            except grpc.RpcError as error:
                emit({"call": name, "ok": False, "code": error.code().name, "details": error.details()})
        return
    if name == "concurrent":
        count = int(sys.argv[4])
        barrier = threading.Barrier(count)

        def client():
            with grpc.insecure_channel(address) as channel:
                stub = pb_grpc.ExternalScalerStub(channel)
                grpc.channel_ready_future(channel).result(timeout=30)
                barrier.wait()
                answers = [call(stub, each, process) for each in ("spec", "metrics", "active")]
                emit({"call": name, "ok": all(a["ok"] for a in answers), "answers": answers})

        threads = [threading.Thread(target=client) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return
    with grpc.insecure_channel(address) as channel:
        emit(call(pb_grpc.ExternalScalerStub(channel), name, process))


if __name__ == "__main__":
    main()
