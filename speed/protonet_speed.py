"""ProtoNet training speed: episodes per second, before and after the cheap optimisations.

Not a test: a measurement to run by hand and paste into data/protonet/README.md.

    python speed/protonet_speed.py                       # this machine's CPU (and the GPU if any)
    python speed/protonet_speed.py --steps 10 --threads 1 --device cpu

Variants, each timed over ``--steps`` training steps after ``--warmup`` steps
(60-way 5-shot 5-query episodes on the Vinyals split, Conv4-64, Adam):

* ``before``: the general ``EpisodeSampler`` (a Python loop over classes,
  images gathered on the CPU, then copied to the device), default memory layout;
* ``fast sampler``: ``FastEpisodeSampler`` (all images on the device as one
  tensor ``[classes, 20, 1, 28, 28]``, an episode is one gather);
* ``fast sampler + channels_last``: what ``course_lib.protonet.train_episodic`` does;
* ``... + torch.compile`` (with ``--compile``): the model compiled.

The "share of conv throughput" compares the convolution FLOPs of a training
step (forward + backward ~ 3x forward) with the FLOP rate this machine
reaches on one large 3x3 convolution (64 -> 64 channels, channels_last),
measured first.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from course_lib import data, episodes, protonet
from course_lib.runtime import get_device


def conv4_forward_flops(image_size: int = 28, hidden: int = 64) -> float:
    """Multiply-adds x 2 of the four 3x3 convolutions of Conv4 on one image."""
    flops, side, channels = 0.0, image_size, 1
    for _ in range(4):
        flops += 2 * side * side * hidden * channels * 9
        side, channels = side // 2, hidden
    return flops


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_conv_flops(device: torch.device, seconds: float = 2.0) -> float:
    """FLOP/s of a forward 3x3 convolution, 64 -> 64 channels, on [256, 64, 28, 28]."""
    x = torch.randn(256, 64, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, device=device).contiguous(memory_format=torch.channels_last)
    flops = 2 * 256 * 28 * 28 * 64 * 64 * 9
    with torch.no_grad():
        F.conv2d(x, w, padding=1)
        synchronize(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds or count < 2:
            F.conv2d(x, w, padding=1)
            count += 1
        synchronize(device)
    return flops * count / (time.perf_counter() - start)


def time_training(train, device, *, fast: bool, channels_last: bool, compile_model: bool, steps: int, warmup: int,
                  ways: int, shots: int, queries: int) -> float:
    config = protonet.ProtoNetConfig(ways=ways, shots=shots, queries=queries, channels_last=channels_last)
    torch.manual_seed(0)
    model = protonet.ProtoNet(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if fast:
        sampler = protonet.FastEpisodeSampler(train, ways, shots, queries, device=device)
    else:
        sampler = episodes.EpisodeSampler(train, ways, shots, queries, device=device)
    forward = torch.compile(model) if compile_model else model
    generator = torch.Generator().manual_seed(0)

    def step():
        episode = sampler.sample(generator)
        loss = F.cross_entropy(forward(episode.support_x, episode.support_y, episode.query_x), episode.query_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps / (time.perf_counter() - start)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", action="append", help="cpu, cuda (repeatable; default: cpu and the GPU if any)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--ways", type=int, default=60)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device(d) for d in args.device] if args.device else [torch.device("cpu")]
    if not args.device and get_device().type != "cpu":
        devices.append(get_device())
    train = data.omniglot_splits("vinyals")["train"]
    images_per_episode = args.ways * (args.shots + args.queries)
    step_flops = 3 * conv4_forward_flops() * images_per_episode
    variants = [("before: EpisodeSampler, default layout", False, False, False),
                ("fast sampler", True, False, False),
                ("fast sampler + channels_last", True, True, False)]
    if args.compile:
        variants.append(("fast sampler + channels_last + torch.compile", True, True, True))
    rows = []
    for device in devices:
        peak = peak_conv_flops(device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        print(f"{device} ({name}): one large 3x3 conv reaches {peak / 1e9:.1f} GFLOP/s")
        for label, fast, channels_last, compile_model in variants:
            try:
                rate = time_training(train, device, fast=fast, channels_last=channels_last,
                                     compile_model=compile_model, steps=args.steps, warmup=args.warmup,
                                     ways=args.ways, shots=args.shots, queries=args.queries)
            except Exception as error:  # torch.compile needs a compiler toolchain; say so and go on
                print(f"  {label}: failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
                continue
            share = rate * step_flops / peak
            rows.append({"device": str(device), "device_name": name, "variant": label, "episodes_per_s": rate,
                         "conv_gflops_per_s": rate * step_flops / 1e9, "peak_conv_gflops_per_s": peak / 1e9,
                         "share_of_conv_peak": share})
            print(f"  {label:48s} {rate:7.2f} episodes/s  ({rate * step_flops / 1e9:6.1f} GFLOP/s, "
                  f"{100 * share:4.0f} % of the conv peak)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"ways": args.ways, "shots": args.shots, "queries": args.queries, "rows": rows}, handle,
                      indent=2)
    return rows


if __name__ == "__main__":
    main()
