#!/usr/bin/python3
"""Exports a torchvision classification model (random weights) to ONNX, with an input and
PyTorch's output for it, for kiln's model tests and benchmarks.

    export_torchvision.py MODEL OUT_DIR [--opset 13] [--size 224] [--seed 0]

writes OUT_DIR/model.onnx, OUT_DIR/input.npz ({"input": float32[1,3,S,S]}) and
OUT_DIR/expected.npz ({"output": PyTorch's output in eval mode}). Uses Debian's python3-torch
and python3-torchvision; nothing is downloaded (weights=None).
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision


def build(name):
    factory = getattr(torchvision.models, name, None)
    if factory is None:
        sys.exit(f"error: torchvision has no model '{name}'")
    try:
        return factory(weights=None)
    except TypeError:
        return factory(pretrained=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out_dir")
    parser.add_argument("--opset", type=int, default=13)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    model = build(args.model).eval()
    # Random batch-norm statistics, so that folding them into the convolutions is tested with
    # something other than mean 0 and variance 1.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    x = torch.rand(1, 3, args.size, args.size) * 2 - 1
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "model.onnx")
    with torch.no_grad():
        expected = model(x)
        torch.onnx.export(model, x, path, opset_version=args.opset, input_names=["input"],
                          output_names=["output"], do_constant_folding=True)
    np.savez(os.path.join(args.out_dir, "input.npz"), input=x.numpy())
    np.savez(os.path.join(args.out_dir, "expected.npz"), output=expected.numpy())


if __name__ == "__main__":
    main()
