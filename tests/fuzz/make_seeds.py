#!/usr/bin/python3
"""Writes the seed corpora of kiln's fuzz targets into tests/fuzz/corpus/<target>/.

The seeds are the inputs kiln's own tests use (workload and target strings, configs, tuning
records, a model like tests/model's two-conv one) and requests of the services as the tests
and clients send them. The binary seeds (ONNX models, protobuf requests) are generated here so
that they can be read and changed: run it with Debian's /usr/bin/python3 (python3-onnx and
python3-protobuf, as the model suite uses) from anywhere, and commit what changes.

  /usr/bin/python3 tests/fuzz/make_seeds.py
"""

import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def chunks(*items):
    """The framing of tests/fuzz/fuzz_util.h's split_chunks: kind, 2-byte length, payload."""
    out = b""
    for kind, payload in items:
        if not isinstance(payload, bytes):
            payload = payload.SerializeToString()
        out += struct.pack("<BH", kind, len(payload)) + payload
    return out


WORKLOADS = [
    "matmul:M=1024,N=1024,K=1024",
    "matmul:M=16,N=16,K=16",
    "dense:M=4,N=16,K=8,bias=1,act=relu",
    "batch_matmul:B=2,M=3,N=4,K=5",
    "conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1",
    "conv2d:N=1,C=16,H=14,W=14,K=32,R=3,S=3,stride=1,pad=1,bias=1,residual=1,act=relu6",
    "conv2d:N=1,C=12,H=15,W=9,K=18,R=1,S=3,stride=2,pad=0,groups=3,layout=NHWC",
    "conv2d:N=1,C=13,H=17,W=19,K=29,R=3,S=5,stride=2,pad=3,dilation=2,groups=1",
    "conv2d:N=1,C=1,H=2,W=3,K=1,R=1,S=1,stride_w=2,pad_h=1",
    "depthwise_conv2d:N=1,C=8,H=8,W=8,R=3,S=3,stride=1,pad=1,act=hardswish",
    "conv2d:N=1,C=4,H=8,W=8,K=4,R=3,S=3,bias=yes",
    "conv2d:N=1,C=1,H=1,W=1,K=1,R=1,S=1,pad=16777216",
]

TARGETS = [
    "llvm",
    "llvm -mcpu=znver4 -mattr=+avx2,+avx512f,+fma",
    "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72",
    "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a76 -mattr=+dotprod",
    "llvm -mtriple=x86_64-linux-gnu -mcpu=haswell",
    "cuda -arch=sm_90",
]

CONFIGS = [
    ("matmul:M=16,N=16,K=16", "", '{"index": 3}'),
    ("matmul:M=16,N=16,K=16", "",
     '{"index": 1370, "knobs": {"k_block": 0, "order": 0, "pack_a": 0, "pack_b": 1, '
     '"parallel": 1, "tile_m": 1, "tile_n_vectors": 2, "unroll_k": 4}}'),
    ("dense:M=4,N=16,K=8,bias=1,act=relu", "llvm -mcpu=znver4 -mattr=+avx2,+avx512f,+fma",
     '{"knobs": {"k_block": 0, "order": 0, "pack_a": 1, "pack_b": 1, "parallel": 1, '
     '"tile_m": 6, "tile_n_vectors": 2, "unroll_k": 4}}'),
    ("conv2d:N=1,C=8,H=8,W=8,K=8,R=3,S=3,pad=1", "",
     '{"knobs": {"block_c": 16, "block_k_vectors": 1, "parallel": 1, "tile_oh": 1, '
     '"tile_ow": 28, "unroll_c": 4}}'),
    ("depthwise_conv2d:N=1,C=8,H=8,W=8,R=3,S=3,pad=1",
     "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72",
     '{"index": 0, "knobs": {"block_c_vectors": 1, "parallel": 1, "tile_ow": 7}}'),
]

RECORD = (
    '{"workload":"%s","target":"%s","model":"AMD EPYC","emulated":false,'
    '"features":"+avx2,+avx512f,+fma","config":{"index":%d,"knobs":%s},"costs":%s,'
    '"error":"%s","error_message":"%s","agent":"local","device":"AMD EPYC",'
    '"measure_options":{"interleaved":true,"min_repeat_ms":20.0,"number":1,"repeat":3,'
    '"threads":1,"warmup":1},"measured_at_ms":1796510428698,"kiln_version":"0.1.0"}'
)
MATMUL_KNOBS = ('{"k_block":0,"order":0,"pack_a":0,"pack_b":1,"parallel":1,"tile_m":1,'
                '"tile_n_vectors":2,"unroll_k":4}')
CONV_KNOBS = ('{"block_c":16,"block_k_vectors":1,"parallel":1,"tile_oh":1,"tile_ow":28,'
              '"unroll_c":4}')
ZEN = "llvm -mcpu=znver4 -mattr=+avx2,+avx512f,+fma"
RECORDS = [
    RECORD % ("matmul:M=16,N=16,K=16", ZEN, 1370, MATMUL_KNOBS,
              "[1.05e-07,1.17e-07,1.04e-07]", "OK", ""),
    RECORD % ("conv2d:N=1,C=8,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1", ZEN, 522, CONV_KNOBS,
              "[2.4e-06]", "OK", ""),
    RECORD % ("matmul:M=16,N=16,K=16", "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72", 7,
              MATMUL_KNOBS, "[]", "WRONG_ANSWER", "max relative error 0.5"),
    RECORD % ("dense:M=4,N=16,K=8,bias=1,act=relu", ZEN, 94, "{}", "[]", "TIMEOUT",
              "ran past 10 s"),
]


def tiny_onnx(onnx):
    """A two-layer model (Conv+Relu, then Flatten and Gemm), float32, weights of a few values."""
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "b")
    fw = numpy_helper.from_array(rng.standard_normal((2, 64)).astype(np.float32), "fw")
    fb = numpy_helper.from_array(rng.standard_normal((2,)).astype(np.float32), "fb")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w, b, fw, fb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="kiln-fuzz-seed")
    onnx.checker.check_model(model)
    return model


def reshape_onnx(onnx):
    """Shape, Gather, Concat and Reshape around a MatMul, as exporters write them."""
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    m = numpy_helper.from_array(np.ones((6, 3), np.float32), "m")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    minus1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "m"], ["y0"]),
        helper.make_node("Sigmoid", ["y0"], ["y"]),
    ]
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    graph = helper.make_graph(
        nodes, "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [m, zero, minus1, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def kiln_protos(folder):
    """The Python classes of proto/kiln/v1/*.proto, generated into `folder`."""
    protos = ["kiln/v1/kiln.proto", "kiln/v1/tracker.proto", "kiln/v1/tuning.proto"]
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--python_out=" + folder] + protos,
                   check=True)
    sys.path.insert(0, folder)
    from kiln.v1 import kiln_pb2, tracker_pb2, tuning_pb2
    return kiln_pb2, tracker_pb2, tuning_pb2


def main():
    import onnx

    for target in ["workload", "target", "config", "tuning_log_import", "onnx", "measure_task",
                   "tracker", "tuning_service"]:
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)

    for i, w in enumerate(WORKLOADS):
        write("workload", "seed-%02d" % i, w)
    for i, t in enumerate(TARGETS):
        write("target", "seed-%02d" % i, t)
    for i, (w, t, c) in enumerate(CONFIGS):
        write("config", "seed-%02d" % i, "%s\n%s\n%s" % (w, t, c))
    for i, r in enumerate(RECORDS):
        write("tuning_log_import", "seed-%02d" % i, r + "\n")
    write("tuning_log_import", "seed-all", "\n".join(RECORDS) + "\n\n")

    model = tiny_onnx(onnx).SerializeToString()
    write("onnx", "seed-conv-gemm.onnx", model)
    write("onnx", "seed-reshape-matmul.onnx", reshape_onnx(onnx).SerializeToString())
    from onnx import numpy_helper
    import numpy as np
    write("onnx", "seed-tensor.pb",
          numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "x")
          .SerializeToString())

    with tempfile.TemporaryDirectory() as folder:
        kiln_pb2, tracker_pb2, tuning_pb2 = kiln_protos(folder)

        def task(task_id, workload, target="llvm", index=0, knobs=None, **options):
            t = kiln_pb2.MeasureTask(task_id=task_id)
            t.workload.canonical = workload
            t.target.canonical = target
            t.config.index = index
            for name, value in (knobs or {}).items():
                t.config.knobs[name] = value
            for name, value in options.items():
                setattr(t.options, name, value)
            return t

        tasks = [
            task("t1", "matmul:M=16,N=16,K=16", index=3, repeat=3, number=1, timeout_s=10),
            task("t2", "conv2d:N=1,C=8,H=8,W=8,K=8,R=3,S=3,stride=1,pad=1",
                 knobs={"block_c": 16, "block_k_vectors": 1, "parallel": 1, "tile_oh": 1,
                        "tile_ow": 28, "unroll_c": 4}),
            task("t3", "matmul:M=16,N=16,K=16", "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72",
                 index=1),
            task("t4", "dense:M=4,N=16,K=8,bias=1,act=relu", index=999999999),
        ]
        for i, t in enumerate(tasks):
            write("measure_task", "seed-%02d" % i, t.SerializeToString())

        # Tracker: kinds as tests/fuzz/tracker_fuzz.cc reads them.
        SUBMIT, STATUS, AGENT_A, AGENT_B, CLOSE_A, CANCEL = 0, 1, 2, 3, 4, 5
        CLOSE_B = CLOSE_A | 8

        def register(agent_id, key="cpu", target="llvm", capacity=1, arch="x86_64"):
            m = tracker_pb2.AgentMessage()
            r = m.register
            r.agent_id = agent_id
            r.device_key = key
            r.target.canonical = target
            r.capacity = capacity
            r.facts.architecture = arch
            r.facts.cpu_model = "AMD EPYC"
            r.facts.cores = 2
            r.facts.isa_features.extend(["avx2", "fma"])
            return m

        def result(task_id, costs=(1e-6,), code=kiln_pb2.MEASURE_ERROR_CODE_OK):
            m = tracker_pb2.AgentMessage()
            m.result.task_id = task_id
            m.result.error_code = code
            m.result.costs_s.extend(costs)
            return m

        def heartbeat():
            m = tracker_pb2.AgentMessage()
            m.heartbeat.sent_unix_ms = 1796510428698
            return m

        def submit(job, key, *ts):
            return tracker_pb2.SubmitRequest(job_id=job, device_key=key, tasks=list(ts))

        write("tracker", "seed-00-run-one-task", chunks(
            (AGENT_A, register("a")), (SUBMIT, submit("j", "cpu", tasks[0])),
            (AGENT_A, heartbeat()), (AGENT_A, result("t1")), (STATUS, tracker_pb2.StatusRequest()),
            (CLOSE_A, b"")))
        write("tracker", "seed-01-agent-lost-with-lease", chunks(
            (SUBMIT, submit("j", "cpu", tasks[0], tasks[1])), (AGENT_A, register("a", capacity=2)),
            (STATUS, tracker_pb2.StatusRequest()), (CLOSE_A, b""),
            (AGENT_B, register("b")), (AGENT_B, result("t2", costs=(float("nan"),))),
            (CANCEL, b"")))
        write("tracker", "seed-02-arm-waits", chunks(
            (SUBMIT, submit("j2", "board", tasks[2])), (AGENT_B, register("x", key="board")),
            (STATUS, tracker_pb2.StatusRequest()),
            (AGENT_A, register("arm", key="board", arch="aarch64",
                                target="llvm -mcpu=cortex-a72")),
            (AGENT_A, result("t3", costs=(), code=kiln_pb2.MEASURE_ERROR_CODE_COMPILE_ERROR)),
            (CLOSE_B, b"")))
        write("tracker", "seed-03-refusals", chunks(
            (SUBMIT, submit("", "cpu", tasks[0])), (SUBMIT, submit("j", "cpu", tasks[3])),
            (SUBMIT, submit("j", "cpu", tasks[0], tasks[0])), (AGENT_A, heartbeat()),
            (AGENT_B, register("b", capacity=100000)), (SUBMIT, submit("j", "cpu"))))
        write("tracker", "seed-04-same-agent-twice", chunks(
            (AGENT_A, register("a")), (AGENT_B, register("a")),
            (SUBMIT, submit("j", "cpu", tasks[1])), (AGENT_A, result("t2")),
            (AGENT_A, result("t2")), (CLOSE_A, b""), (CLOSE_B, b"")))

        # Tuning: kinds as tests/fuzz/tuning_service_fuzz.cc reads them.
        QUERY, LIST_WORKLOADS, START, WATCH, CANCEL_JOB, LIST_JOBS, RESUME = range(7)

        def spec(**fields):
            return tuning_pb2.StartJobRequest(spec=tuning_pb2.JobSpec(**fields))

        job1 = tuning_pb2.JobRequest(id="job-1")
        write("tuning_service", "seed-00-queries", chunks(
            (QUERY, tuning_pb2.QueryBestRequest(workload="matmul:M=64,N=64,K=64",
                                                target="llvm -mcpu=znver4", k=3)),
            (QUERY, tuning_pb2.QueryBestRequest(workload="matmul:M=64,N=64,K=64",
                                                target="llvm -mcpu=znver4", model="AMD EPYC")),
            (LIST_WORKLOADS, tuning_pb2.ListWorkloadsRequest(op="matmul")),
            (LIST_JOBS, tuning_pb2.ListJobsRequest())))
        write("tuning_service", "seed-01-job", chunks(
            (START, spec(workload="matmul:M=16,N=16,K=16", target="llvm", trials=4, batch=4,
                         tuner="random", threads=1)),
            (WATCH, job1), (LIST_JOBS, tuning_pb2.ListJobsRequest()), (CANCEL_JOB, job1),
            (RESUME, job1), (CANCEL_JOB, job1)))
        write("tuning_service", "seed-02-model-job", chunks(
            (START, spec(model=model, target="llvm", trials=2, batch=2, scheduler="round-robin",
                         max_task_trials=1, model_name="tiny")),
            (WATCH, tuning_pb2.JobRequest(id="job-2")), (LIST_JOBS, tuning_pb2.ListJobsRequest())))
        write("tuning_service", "seed-03-refusals", chunks(
            (START, spec(workload="matmul:M=16,N=16,K=16", device_key="cpu", trials=4)),
            (START, spec(workload="matmul:M=0", trials=4)),
            (START, spec(workload="matmul:M=16,N=16,K=16", model_path="missing.onnx")),
            (START, spec(model_path="/nonexistent/model.onnx", trials=1)),
            (QUERY, tuning_pb2.QueryBestRequest(workload="conv2d:N=1", target="llvm")),
            (WATCH, tuning_pb2.JobRequest(id="job-99")), (RESUME, tuning_pb2.JobRequest())))


if __name__ == "__main__":
    main()
