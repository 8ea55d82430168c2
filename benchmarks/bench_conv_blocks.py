"""What one convolution costs ONNX Runtime on this CPU as its channel counts fall: why pruning
EResFD's 8- and 16-filter layers saves fewer milliseconds than FLOPs.

Times a single 3x3 convolution (+ ReLU) at EResFD's finest level (160x120, 640x480 input), for
input -> output channel counts from the dense model's 16 -> 16 down to what FPGM 50 % leaves, with
ONNX Runtime's blocked layout (NCHWc, the default) and without it (plain NCHW, im2col + GEMM),
one thread, the best of three medians of ``--runs``/3 runs each. Multiply-adds are the real ones.

    python benchmarks/bench_conv_blocks.py [--runs 50] [--threads 1] [--size 160x120]

On a CPU whose NCHWc block is 16 channels (AVX-512), an output of 4, 8 or 9 channels costs what 16
cost: only the input channels, below 16, make a convolution cheaper.
"""

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

PAIRS = [(16, 16), (16, 9), (16, 8), (16, 4), (9, 16), (8, 16), (8, 8), (5, 16)]


def conv_model(inputs, outputs, seed=0):
    """A graph of one 3x3 convolution (padding 1, bias) followed by a ReLU; the spatial size is dynamic."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array((rng.standard_normal((outputs, inputs, 3, 3)) * 0.1).astype(np.float32), "weight")
    bias = numpy_helper.from_array(np.zeros(outputs, np.float32), "bias")
    nodes = [helper.make_node("Conv", ["x", "weight", "bias"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["y"])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, inputs, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def session(model, blocked, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # NCHWc is one of the "all" level's layout optimisations; "extended" stops short of it.
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if blocked
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def median_ms(run, runs):
    run()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", default="160x120", help="feature map WxH (default 160x120)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"ONNX Runtime {ort.__version__}, one 3x3 conv + ReLU at {width}x{height}, {args.threads} thread(s), "
          f"the best of 3 medians of {max(1, args.runs // 3)} runs, the two layouts in turns")
    print(f"{'in -> out':>10} {'M mult-adds':>12} {'NCHWc ms':>9} {'plain ms':>9}")
    for inputs, outputs in PAIRS:
        model = conv_model(inputs, outputs)
        x = np.random.default_rng(1).standard_normal((1, inputs, height, width)).astype(np.float32)
        blocked, plain = (session(model, flag, args.threads) for flag in (True, False))
        samples = {True: [], False: []}
        for _ in range(3):  # in turns, so that a change of load falls on both
            for flag, sess in ((True, blocked), (False, plain)):
                samples[flag].append(median_ms(lambda: sess.run(None, {"x": x}), max(1, args.runs // 3)))
        macs = height * width * inputs * outputs * 9 / 1e6
        print(f"{inputs:>4} -> {outputs:<3} {macs:>12.1f} {min(samples[True]):>9.3f} {min(samples[False]):>9.3f}")


if __name__ == "__main__":
    main()
