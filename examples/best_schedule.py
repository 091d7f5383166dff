#!/usr/bin/python3
"""Asks a `kiln serve` for the fastest stored schedules of a workload on a target.

The kiln.v1 stubs are generated from the repository's proto/ folder with Debian's protoc and
grpc_python_plugin (packages protobuf-compiler, protobuf-compiler-grpc, python3-grpcio):

    protoc -I proto --python_out=STUBS --grpc_python_out=STUBS \\
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \\
        proto/kiln/v1/kiln.proto proto/kiln/v1/tuning.proto

Usage:
    /usr/bin/python3 examples/best_schedule.py --stubs STUBS --server 127.0.0.1:9190 \\
        --workload matmul:M=1024,N=1024,K=1024 --target 'llvm -mcpu=... -mattr=...' \\
        --model 'AMD EPYC ...' [--top 3] [--token-file F] [--tls-ca F]

Records answer only for the hardware they were measured on: a target of bare `llvm` with no
--model asks for the server's own CPU. Prints one JSON object: the workload, the target key and
the records, fastest first. Exits 1 when the server refuses or cannot be reached, 2 on bad usage.
"""

import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stubs", required=True, help="folder of the generated kiln.v1 stubs")
    parser.add_argument("--server", required=True, help="host:port of kiln serve")
    parser.add_argument("--workload", required=True)
    parser.add_argument("--target", default="llvm")
    parser.add_argument("--model", default="", help="the CPU model the records were measured on")
    parser.add_argument("--top", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0,
                        help="the thread count the kernel will run with (0: records of every count)")
    parser.add_argument("--token-file", help="a file holding the server's bearer token")
    parser.add_argument("--tls-ca", help="PEM CA certificate: connect over TLS")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    args = parser.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from kiln.v1 import tuning_pb2, tuning_pb2_grpc

    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(args.server)
    metadata = []
    if args.token_file:
        with open(args.token_file) as f:
            metadata.append(("authorization", "Bearer " + f.read().strip()))

    stub = tuning_pb2_grpc.TuningStub(channel)
    request = tuning_pb2.QueryBestRequest(workload=args.workload, target=args.target,
                                          model=args.model, k=args.top, threads=args.threads)
    try:
        response = stub.QueryBest(request, metadata=metadata, timeout=args.timeout)
    except grpc.RpcError as e:
        print("error: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        return 1
    records = [{
        "config": {"index": r.config.index, "knobs": dict(sorted(r.config.knobs.items()))},
        "time_s": r.time_s,
        "gflops": r.gflops,
        "threads": r.threads,
        "agent": r.agent,
        "device": r.device,
        "measured_at_unix_ms": r.measured_at_unix_ms,
    } for r in response.records]
    print(json.dumps({"workload": response.workload, "target": response.target,
                      "model": response.model, "records": records}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
