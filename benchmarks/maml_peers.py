"""MAML and its peers side by side: milliseconds per meta-iteration and peak memory.

Not a test: a measurement to run by hand (seconds on a GPU, minutes on a CPU),
to size ``--steps`` / ``--max-minutes`` of ``python -m course_lib.maml``.

    python benchmarks/maml_peers.py --device cuda                         # all variants, paper settings
    python benchmarks/maml_peers.py --device cpu --meta-batch 4 --steps 3 --threads 1
    python benchmarks/maml_peers.py --device cuda --ways 20 --variants maml,fomaml

Each variant is timed on one fixed meta-batch of random 28x28 images (the
arithmetic does not depend on the pixels, so no data set is needed) with the
settings :func:`course_lib.maml.default_config` gives it, after ``--warmup``
steps. ``maml (per-task loop)`` is the same second-order meta-gradient with a
Python loop over tasks instead of vmap, to show what batching buys.
The last column is how many meta-iterations fit in ``--minutes`` minutes.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from course_lib import maml
from course_lib.runtime import get_device


def batch_for(config: maml.MAMLConfig, device: torch.device, generator: torch.Generator):
    t, n, k, q = config.meta_batch, config.ways, config.shots, config.queries
    side = config.image_size
    sx = torch.rand(t, n * k, 1, side, side, generator=generator).to(device)
    qx = torch.rand(t, n * q, 1, side, side, generator=generator).to(device)
    labels = torch.arange(n, device=device)
    return sx, labels.repeat_interleave(k).expand(t, -1), qx, labels.repeat_interleave(q).expand(t, -1)


def time_variant(config: maml.MAMLConfig, device: torch.device, steps: int, warmup: int, loop: bool = False) -> dict:
    module = maml.MetaLearner(config, generator=torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.meta_lr)
    batch = batch_for(config, device, torch.Generator().manual_seed(1))

    def step():
        if loop:
            optimizer.zero_grad(set_to_none=True)
            loss, _ = maml.meta_loss_loop(module.theta(), batch, **module.objective_kwargs())
            loss.backward()
            optimizer.step()
        else:
            maml.meta_step(module, optimizer, batch)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        tick = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - tick)
    times.sort()
    return {
        "ms_per_step": round(1000 * times[len(times) // 2], 2),
        "peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device")
    parser.add_argument("--variants", default="maml,fomaml,reptile,anil,metasgd")
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--meta-batch", type=int, help="override every variant's meta-batch")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--no-loop", action="store_true", help="skip the per-task loop reference")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{args.ways}-way {args.shots}-shot, Conv4-{args.hidden}, on {name}, torch {torch.__version__}")
    rows = []
    runs = [(v, False) for v in args.variants.split(",") if v] + ([] if args.no_loop else [("maml", True)])
    for variant, loop in runs:
        overrides = {"hidden": args.hidden, "shots": args.shots}
        if args.meta_batch:
            overrides["meta_batch"] = args.meta_batch
        config = maml.default_config("omniglot", variant, args.ways, **overrides)
        measured = time_variant(config, device, args.steps, args.warmup, loop=loop)
        row = {"variant": variant + (" (per-task loop)" if loop else ""), "meta_batch": config.meta_batch,
               "queries": config.queries, "inner_steps": config.inner_steps, **measured,
               "steps_in_budget": int(60_000 * args.minutes / measured["ms_per_step"])}
        rows.append(row)
        print(f"{row['variant']:>24}: {row['ms_per_step']:9.1f} ms/step  (meta-batch {row['meta_batch']}, "
              f"{row['inner_steps']} inner steps, {row['queries']} queries/class)  peak {row['peak_memory_mb']} MB  "
              f"-> {row['steps_in_budget']} steps in {args.minutes:g} min", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
