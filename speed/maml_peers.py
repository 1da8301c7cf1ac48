"""MAML and its peers side by side: milliseconds per meta-iteration and peak memory.

Not a test: a measurement to run by hand (seconds on a GPU, minutes on a CPU),
to size ``--steps`` / ``--max-minutes`` of ``python -m course_lib.maml``.

    python speed/maml_peers.py --device cuda                         # all variants, paper settings
    python speed/maml_peers.py --device cpu --meta-batch 4 --steps 3 --threads 1
    python speed/maml_peers.py --device cuda --ways 20 --variants maml,fomaml

Each variant is timed on one fixed meta-batch of random 28x28 images (the
arithmetic does not depend on the pixels, so no data set is needed) with the
settings :func:`course_lib.maml.default_config` gives it, after ``--warmup``
steps. ``maml (per-task loop)`` is the same second-order meta-gradient with a
Python loop over tasks instead of vmap, to show what batching buys.
The last column is how many meta-iterations fit in ``--minutes`` minutes.

**Peers** (``--peers``, issue 5): one meta-gradient of second-order and
first-order MAML (Conv4-64, 5-way 1-shot, 15 queries per class, meta-batch
32, one inner step of 0.4, cross-entropy, transductive batch norm) computed
by ours and by other libraries, on ONE set of initial parameters and ONE
meta-batch of random inputs::

    pip install higher torchopt        # into the venv, for this measurement only (not course dependencies)
    OMP_NUM_THREADS=1 python speed/maml_peers.py --peers higher,torchopt,torchopt-metasgd,learn2learn \
        --device cpu --threads 1 --reps 8 --check-float64

Implementations (each written the way the library's own MAML example does it):

* ``ours (vmap)``: :func:`course_lib.maml.meta_loss` (torch.func.grad inside vmap over the tasks);
* ``ours (loop)``: :func:`course_lib.maml.fast.meta_backward_loop` (a Python loop over tasks,
  ``torch.autograd.grad(create_graph=True)``, torch's native batch norm, one
  ``backward()`` per task); ``--batching auto`` (the default of
  ``python -m course_lib train maml``) trains with it on CPUs and with vmap on GPUs;
* ``higher``: ``higher.innerloop_ctx`` over :class:`Conv4Module` (an ``nn.Module``
  with the same architecture and batch norm), ``torch.optim.SGD(lr=0.4)``; second
  order ``track_higher_grads=True``; first order ``track_higher_grads=False``
  and the query gradient at the (detached) fast weights added to theta's;
* ``torchopt``: its functional API, ``torchopt.sgd`` + ``torchopt.apply_updates``
  over ``torch.func.functional_call`` (``create_graph`` only for second order);
* ``torchopt-metasgd``: ``torchopt.MetaSGD`` with ``extract_state_dict`` /
  ``recover_state_dict`` (torchopt's MAML example; second order only: its
  ``step`` always differentiates with ``create_graph=True``);
* ``learn2learn``: ``learn2learn.algorithms.MAML(model, lr, first_order)``,
  ``clone()`` / ``adapt()`` per task.

The peers loop over tasks and call ``backward()`` once per task (as their
examples do), so only one task's graph is alive at a time; so does ``ours
(loop)`` (``ours (vmap)`` builds the whole meta-batch's graph, then
differentiates once).

The meta-gradients are checked against ``ours (vmap)`` (float32, and, with
``--check-float64``, all implementations again in float64 against ours in
float64); then each implementation is timed, interleaved
(A, B, C, A, B, C, ...; the two orders in the same rounds), median over
``--reps`` rounds after one warm-up round. Peak memory: the peak resident
set size (``VmHWM`` of ``/proc/self/status``, reset just before) of a fresh
subprocess per implementation and order that builds the same inputs and
computes two meta-gradients, minus its resident set size just before the
first one (so imports and inputs are not counted). On a CPU, ``tracemalloc``
does not see torch's allocations, and torch's memory profiler records
allocations of tensors but not the allocator's overhead; the resident set is
what the machine has to provide. Results go to
``--out`` (``data/maml/peers_cpu.json`` and ``.md`` by default).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import maml
from course_lib.maml import fast as maml_fast
from course_lib.runtime import get_device, machine_description


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
            maml.meta_step(module, optimizer, batch, batched=False)
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


# --------------------------------------------------------------------------
# Peers (--peers): the same meta-gradient by other libraries
# --------------------------------------------------------------------------

PEERS = ("higher", "torchopt", "torchopt-metasgd", "learn2learn")
SECOND_ORDER_ONLY = {"torchopt-metasgd"}
PEER_PACKAGES = {"higher": "higher", "torchopt": "torchopt", "torchopt-metasgd": "torchopt",
                 "learn2learn": "learn2learn"}
OURS = ("ours (vmap)", "ours (loop)")


class Conv4Module(nn.Module):
    """:func:`course_lib.maml.conv4_forward` as an ``nn.Module`` (for the peers, which adapt modules).

    4 x (conv3x3 without bias -> BatchNorm2d with batch statistics -> ReLU ->
    maxpool 2) -> linear. ``track_running_stats=False``: batch statistics in
    train and eval mode, biased variance, eps 1e-5, like ``maml.batch_norm``
    (the query pass uses the query set's own statistics: ``bn="query"``).
    """

    def __init__(self, ways: int, hidden: int = 64, image_size: int = 28) -> None:
        super().__init__()
        layers, channels, side = [], 1, image_size
        for _ in range(4):
            layers += [nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
                       nn.BatchNorm2d(hidden, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
            channels, side = hidden, side // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(hidden * side * side, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def our_name(module_name: str) -> str:
    """``features.4.weight`` -> ``conv1_weight``, ``features.5.bias`` -> ``bn1_bias``, ``head.bias`` -> same."""
    if module_name.startswith("head."):
        return module_name.replace(".", "_")
    _, index, kind = module_name.split(".")
    block, position = divmod(int(index), 4)
    return f"{'conv' if position == 0 else 'bn'}{block}_{kind}"


def conv4_module(theta: dict, config: maml.MAMLConfig) -> Conv4Module:
    module = Conv4Module(config.ways, config.hidden, config.image_size).to(next(iter(theta.values())).dtype)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(theta[our_name(name)])
    return module


def module_grads(module: nn.Module) -> dict:
    return {our_name(n): p.grad.detach().clone() for n, p in module.named_parameters()}


def import_learn2learn_maml():
    """``learn2learn.algorithms.maml.MAML`` without running ``learn2learn/__init__.py``.

    The package's ``__init__`` imports all its sub-packages (gym, torchvision,
    pytorch_lightning, ...), none of which MAML needs and none installed here
    (installing torchvision could replace torch). The modules MAML imports
    (``algorithms/maml.py``, ``algorithms/base_learner.py``, ``utils/__init__.py``)
    are loaded as they are, under empty parent packages.
    """
    try:
        return importlib.import_module("learn2learn.algorithms.maml").MAML
    except ImportError:
        for name in [m for m in sys.modules if m == "learn2learn" or m.startswith("learn2learn.")]:
            del sys.modules[name]
    spec = importlib.util.find_spec("learn2learn")
    if spec is None or spec.origin is None:
        raise ImportError("learn2learn is not installed")
    root = Path(spec.origin).parent
    for name, folder in (("learn2learn", root), ("learn2learn.algorithms", root / "algorithms")):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return importlib.import_module("learn2learn.algorithms.maml").MAML


def make_meta_gradient(name: str, theta: dict, batch, config: maml.MAMLConfig, first_order: bool):
    """A function of no arguments returning the meta-gradient ``{our parameter name: tensor}``.

    Everything that is not part of a meta-iteration (modules, optimizers) is built here, once.
    """
    sx, sy, qx, qy = batch
    tasks, steps, lr = len(sx), config.inner_steps, config.inner_lr
    variant = "fomaml" if first_order else "maml"

    if name in OURS:
        params = {k: v.detach().clone().requires_grad_() for k, v in theta.items()}
        kw = dict(variant=variant, steps=steps, inner_lr=lr, forward=maml.conv4_forward, regression=False,
                  lrs=None, bn="query")
        if name == "ours (vmap)":
            def run():
                loss, _ = maml.meta_loss(params, batch, **kw)
                return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
            return run

        def run():  # as maml.meta_step(batched=False) does: one backward pass per task into .grad
            for p in params.values():
                p.grad = None
            maml_fast.meta_backward_loop(params, batch, **kw)
            return {k: p.grad for k, p in params.items()}
        return run

    model = conv4_module(theta, config)

    if name == "higher":
        import higher

        inner_opt = torch.optim.SGD(model.parameters(), lr=lr)

        def run():
            model.zero_grad(set_to_none=True)
            for i in range(tasks):
                with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                                          track_higher_grads=not first_order) as (fmodel, diffopt):
                    for _ in range(steps):
                        diffopt.step(F.cross_entropy(fmodel(sx[i]), sy[i]))
                    query_loss = F.cross_entropy(fmodel(qx[i]), qy[i]) / tasks
                    if first_order:  # the fast weights are detached leaves: d phi / d theta = I
                        for p, g in zip(model.parameters(), torch.autograd.grad(query_loss, fmodel.parameters())):
                            p.grad = g if p.grad is None else p.grad + g
                    else:
                        query_loss.backward()
            return module_grads(model)
        return run

    if name == "torchopt":
        import torchopt

        names = [n for n, _ in model.named_parameters()]
        theta_leaves = tuple(model.parameters())
        inner = torchopt.sgd(lr=lr)

        def run():
            model.zero_grad(set_to_none=True)
            for i in range(tasks):
                fast, state = theta_leaves, inner.init(theta_leaves)
                for _ in range(steps):
                    loss = F.cross_entropy(torch.func.functional_call(model, dict(zip(names, fast)), (sx[i],)), sy[i])
                    grads = torch.autograd.grad(loss, fast, create_graph=not first_order)
                    updates, state = inner.update(grads, state, params=fast, inplace=False)
                    fast = torchopt.apply_updates(fast, updates, inplace=False)
                query = torch.func.functional_call(model, dict(zip(names, fast)), (qx[i],))
                (F.cross_entropy(query, qy[i]) / tasks).backward()
            return module_grads(model)
        return run

    if name == "torchopt-metasgd":
        import torchopt

        if first_order:
            raise ValueError("torchopt.MetaSGD is second order only")
        inner_opt = torchopt.MetaSGD(model, lr=lr)
        model_state = torchopt.extract_state_dict(model, by="reference", detach_buffers=True)
        opt_state = torchopt.extract_state_dict(inner_opt)

        def run():
            model.zero_grad(set_to_none=True)
            for i in range(tasks):
                for _ in range(steps):
                    inner_opt.step(F.cross_entropy(model(sx[i]), sy[i]))
                (F.cross_entropy(model(qx[i]), qy[i]) / tasks).backward()
                torchopt.recover_state_dict(model, model_state)
                torchopt.recover_state_dict(inner_opt, opt_state)
            return module_grads(model)
        return run

    if name == "learn2learn":
        meta_model = import_learn2learn_maml()(model, lr=lr, first_order=first_order)

        def run():
            meta_model.zero_grad(set_to_none=True)
            for i in range(tasks):
                learner = meta_model.clone()
                for _ in range(steps):
                    learner.adapt(F.cross_entropy(learner(sx[i]), sy[i]))
                (F.cross_entropy(learner(qx[i]), qy[i]) / tasks).backward()
            return module_grads(model)
        return run

    raise ValueError(f"unknown implementation {name!r}; peers are {PEERS}")


def peer_inputs(config: maml.MAMLConfig, dtype=torch.float32):
    """ONE set of initial parameters and ONE meta-batch (fixed seeds), shared by every implementation."""
    theta = maml.conv4_init(config.ways, config.hidden, 1, config.image_size,
                            generator=torch.Generator().manual_seed(0))  # float32, then cast: the same numbers
    sx, sy, qx, qy = batch_for(config, torch.device("cpu"), torch.Generator().manual_seed(1))
    return {k: v.to(dtype) for k, v in theta.items()}, (sx.to(dtype), sy.contiguous(), qx.to(dtype), qy.contiguous())


def max_abs_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in b)


def max_abs(a: dict) -> float:
    return max(float(v.abs().max()) for v in a.values())


def proc_status_mb(field: str) -> float:
    """``VmRSS`` (resident set size now) or ``VmHWM`` (its peak) of this process (Linux), MB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(name: str, config: maml.MAMLConfig, first_order: bool) -> dict:
    """Run in a fresh process: peak RSS of two meta-gradients, minus the RSS just before them.

    The peak is the kernel's high-water mark of this process's resident set
    (``VmHWM``), reset just before the meta-gradients (``echo 5 >
    /proc/self/clear_refs``) so that imports do not count.
    ``getrusage(RUSAGE_SELF).ru_maxrss`` would not do: Linux carries the
    forking parent's peak RSS over ``exec`` into it (every probe would read
    the parent's peak, not its own).
    """
    theta, batch = peer_inputs(config)
    run = make_meta_gradient(name, theta, batch, config, first_order)
    before = proc_status_mb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        reset = True
    except OSError:
        reset = False
    for _ in range(2):
        run()
    peak = proc_status_mb("VmHWM")
    return {"rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
            "peak_increase_mb": round(peak - before, 1), "hwm_reset": reset}


def versions(names) -> dict:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    packages = [PEER_PACKAGES[n] for n in names]
    for package in dict.fromkeys(packages + (["optree"] if "torchopt" in packages else [])):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    return out


def run_peers(args, config: maml.MAMLConfig) -> dict:
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; choose from {', '.join(PEERS)}")
    skipped = {}
    for peer in peers:  # a peer that does not import here is recorded and skipped, not fatal
        try:
            if peer == "learn2learn":
                import_learn2learn_maml()
            else:
                importlib.import_module(PEER_PACKAGES[peer])
        except Exception as error:  # noqa: BLE001 - anything that stops it importing
            skipped[peer] = f"{type(error).__name__}: {error}"
    peers = [p for p in peers if p not in skipped]
    orders = {"second": False, "first": True}
    cells = [(name, order) for order in orders for name in (*OURS, *peers)
             if not (order == "first" and name in SECOND_ORDER_ONLY)]
    loads = [os.getloadavg()]
    started = time.time()
    cpu_started = time.process_time()

    theta, batch = peer_inputs(config)
    runs = {cell: make_meta_gradient(cell[0], theta, batch, config, orders[cell[1]]) for cell in cells}
    # Round 0: warm-up, and the gradients that are compared.
    grads, times = {}, {cell: [] for cell in cells}
    for cell in cells:
        tick = time.perf_counter()
        grads[cell] = runs[cell]()
        print(f"warm-up {cell[0]:>18} {cell[1]:>6} order: {1000 * (time.perf_counter() - tick):8.0f} ms", flush=True)
    reference = {order: grads[("ours (vmap)", order)] for order in orders}
    tolerance = {order: args.rtol * max_abs(reference[order]) for order in orders}
    diffs = {cell: max_abs_diff(grads[cell], reference[cell[1]]) for cell in cells}
    checks = {}
    for cell in cells:
        checks[cell] = diffs[cell] <= tolerance[cell[1]]
        print(f"  {cell[0]:>18} {cell[1]:>6}: max |grad - ours (vmap)| = {diffs[cell]:.2e} "
              f"(tolerance {tolerance[cell[1]]:.1e}) {'ok' if checks[cell] else 'MISMATCH'}", flush=True)
    float64 = {}
    if args.check_float64:
        theta64, batch64 = peer_inputs(config, torch.float64)
        ref64 = {}
        for cell in cells:
            g64 = make_meta_gradient(cell[0], theta64, batch64, config, orders[cell[1]])()
            if cell[0] == "ours (vmap)":
                ref64[cell[1]] = g64
            float64[cell] = {"vs_ours_float64": max_abs_diff(g64, ref64[cell[1]]),
                             "float32_vs_own_float64": max_abs_diff(grads[cell], g64)}
            print(f"  float64 {cell[0]:>18} {cell[1]:>6}: max |grad - ours| = {float64[cell]['vs_ours_float64']:.2e}; "
                  f"its float32 error {float64[cell]['float32_vs_own_float64']:.2e}", flush=True)
        del theta64, batch64, ref64
    if not all(checks.values()):
        raise SystemExit("meta-gradients differ: not timing implementations that compute something else")
    for rep in range(args.reps):
        for cell in cells:
            tick = time.perf_counter()
            runs[cell]()
            times[cell].append(time.perf_counter() - tick)
        loads.append(os.getloadavg())
        print(f"round {rep + 1}/{args.reps}: " + ", ".join(f"{c[0]} {c[1][0]}o {1000 * times[c][-1]:.0f}"
                                                          for c in cells) + f"  load {loads[-1][0]:.2f}", flush=True)
    del runs, grads
    timing_seconds = time.time() - started
    timing_cpu = time.process_time() - cpu_started
    # Peak memory: a fresh process per cell (torch's CPU allocations are invisible to tracemalloc).
    memory = {}
    if not args.no_memory:
        for cell in cells:
            command = [sys.executable, __file__, "--memory-probe", cell[0], "--probe-order", cell[1],
                       "--meta-batch", str(config.meta_batch), "--ways", str(config.ways), "--shots",
                       str(config.shots), "--hidden", str(config.hidden), "--threads", str(torch.get_num_threads())]
            result = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
            if result.returncode:
                memory[cell] = {"error": (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]}
            else:
                memory[cell] = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"memory {cell[0]:>18} {cell[1]:>6}: {memory[cell]}", flush=True)
    loads.append(os.getloadavg())

    rows = []
    for cell in cells:  # medians and ratios: summarise()
        row = {"implementation": cell[0], "order": cell[1], "ms_all": [round(1000 * t, 1) for t in times[cell]],
               "max_abs_grad_diff_vs_ours_vmap": float(f"{diffs[cell]:.3e}"),
               "grad_check": "ok" if checks[cell] else "mismatch"}
        if cell in float64:
            row["float64"] = {k: float(f"{v:.3e}") for k, v in float64[cell].items()}
        if cell in memory:
            row["memory"] = memory[cell]
        rows.append(row)
    one_minute = [round(l[0], 2) for l in loads]
    return summarise({
        "issue": 5,
        "protocol": {"network": f"Conv4-{config.hidden} (no conv bias, batch norm with batch statistics, "
                                "transductive: queries normalised with the query set's statistics)",
                     "ways": config.ways, "shots": config.shots, "queries_per_class": config.queries,
                     "meta_batch": config.meta_batch, "inner_steps": config.inner_steps,
                     "inner_lr": config.inner_lr, "image_size": config.image_size, "loss": "cross-entropy",
                     "inputs": "uniform random images (seed 1), theta from conv4_init (seed 0)",
                     "timed": "one meta-gradient (inner loop + query loss + backward to theta); the outer Adam "
                              "step (identical for all) is not included",
                     "repetitions": args.reps, "warmup_rounds": 1,
                     "interleaving": "each round runs every (implementation, order) once, in the listed order",
                     "statistic": "median over the repetitions",
                     "threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "gradient_check": {"reference": "ours (vmap), same float32 inputs",
                           "rule": f"max |g - g_ref| <= {args.rtol:g} * max |g_ref|",
                           "tolerance": {o: float(f"{t:.3e}") for o, t in tolerance.items()},
                           "max_abs_ref_grad": {o: float(f"{max_abs(reference[o]):.3e}") for o in orders},
                           "float64_checked": bool(args.check_float64)},
        "memory_method": None if args.no_memory else (
            "a fresh subprocess per (implementation, order) builds the same inputs and computes two "
            "meta-gradients; peak = the kernel's peak resident set size of that process (VmHWM, reset just "
            "before the first meta-gradient); 'MB above start' = peak minus the resident set size (VmRSS) just "
            "before the first (imports, inputs and modules excluded)"),
        "rows": rows,
        "skipped": skipped,
        "versions": versions(peers),
        "machine": machine_description(torch.device("cpu")),
        "load_average_1min": {"start": one_minute[0], "end": one_minute[-1], "min": min(one_minute),
                              "median": statistics.median(one_minute), "max": max(one_minute), "all": one_minute},
        "timing_wall_seconds": round(timing_seconds, 1),
        "timing_process_cpu_seconds": round(timing_cpu, 1),
        "command": "OMP_NUM_THREADS=" + str(os.environ.get("OMP_NUM_THREADS")) + " python "
                   + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })


def summarise(record: dict) -> dict:
    """Medians and ratios from the rows' raw times ``ms_all`` (also used by ``--render``).

    ``ratio_to_ours``: median time / median time of the faster of ours (vmap,
    loop) in the same order. ``paired_ratio_to_ours``: the median over rounds
    of (this time / ours' time in the same round): the rounds are interleaved,
    so this cancels load changes between rounds.
    """
    rows = record["rows"]
    for r in rows:
        ms = sorted(r["ms_all"])
        r["ms_median"], r["ms_min"], r["ms_max"] = round(statistics.median(ms), 1), ms[0], ms[-1]
    for order in dict.fromkeys(r["order"] for r in rows):
        ours_best = min((r for r in rows if r["order"] == order and r["implementation"] in OURS),
                        key=lambda r: r["ms_median"])
        for r in rows:
            if r["order"] == order:
                r["ratio_to_ours"] = round(r["ms_median"] / ours_best["ms_median"], 3)
                r["paired_ratio_to_ours"] = round(statistics.median(
                    a / b for a, b in zip(r["ms_all"], ours_best["ms_all"])), 3)
                r["ours_reference"] = ours_best["implementation"]
    return record


def peers_markdown(record: dict) -> str:
    p, m = record["protocol"], record["machine"]
    lines = [
        "# MAML meta-gradient: ours and peers, side by side (CPU)",
        "",
        f"Written by `{record['command']}` ({record['finished']}). Issue 5.",
        "",
        f"One meta-gradient of MAML: {p['network']}, {p['ways']}-way {p['shots']}-shot, {p['queries_per_class']} "
        f"queries per class, meta-batch {p['meta_batch']}, {p['inner_steps']} inner step of {p['inner_lr']}, "
        f"cross-entropy; the same initial parameters and the same meta-batch for every implementation. "
        f"Timed: {p['timed']}. Median over {p['repetitions']} interleaved rounds after {p['warmup_rounds']} "
        f"warm-up round. Ratio = median / median of the faster of ours (vmap, loop) in the same order; "
        f"paired ratio = median over rounds of (time / that of ours in the same round), which cancels "
        f"load changes between rounds.",
        "",
        "| implementation | order | ms (median) | min-max ms | ratio to ours | paired ratio | peak memory "
        "(MB above start) | peak RSS (MB) | max abs grad diff vs ours (vmap) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        mem = r.get("memory", {})
        lines.append(f"| {r['implementation']} | {r['order']} | {r['ms_median']:.0f} | {r['ms_min']:.0f}-"
                     f"{r['ms_max']:.0f} | {r['ratio_to_ours']:.2f} | {r['paired_ratio_to_ours']:.2f} | "
                     f"{mem.get('peak_increase_mb', mem.get('error', ''))} | {mem.get('peak_rss_mb', '')} | "
                     f"{r['max_abs_grad_diff_vs_ours_vmap']:.1e} |")
    g = record["gradient_check"]
    lines += ["", f"Gradient check: {g['rule']} (tolerance "
              + ", ".join(f"{o} order {t:.1e}, max |g| {record['gradient_check']['max_abs_ref_grad'][o]:.2e}"
                          for o, t in g["tolerance"].items()) + "): all passed."]
    if g["float64_checked"]:
        lines += ["", "float64 (same inputs cast): max |g - ours (vmap) float64| and each one's own float32 error:",
                  ""]
        lines += [f"- {r['implementation']}, {r['order']} order: {r['float64']['vs_ours_float64']:.1e}; float32 vs "
                  f"float64 {r['float64']['float32_vs_own_float64']:.1e}" for r in record["rows"] if "float64" in r]
    if record.get("memory_method"):
        lines += ["", f"Peak memory: {record['memory_method']}."]
    if record["skipped"]:
        lines += ["", "Skipped (did not import): " + "; ".join(f"{k}: {v}" for k, v in record["skipped"].items())]
    load = record["load_average_1min"]
    lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + ".",
              "", f"Machine: {m.get('cpu')}, {m.get('cpu_count')} cores, {p['threads']} torch thread(s), "
              f"OMP_NUM_THREADS={p['OMP_NUM_THREADS']}; 1-minute load average during the run: median "
              f"{load['median']}, min {load['min']}, max {load['max']} (the machine is shared with training jobs). "
              f"Warm-up, gradient checks and timed rounds took {record['timing_wall_seconds']} s wall clock and "
              f"{record['timing_process_cpu_seconds']} s of this process's CPU time (the memory subprocesses "
              f"not counted)."]
    if record.get("rendered"):
        lines += ["", f"Tables re-rendered from the JSON's raw times by `{record['rendered']['command']}` "
                  f"({record['rendered']['at']})."]
    return "\n".join(lines) + "\n"


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
    peers = parser.add_argument_group("peers (issue 5)")
    peers.add_argument("--peers", help=f"compare ours with these libraries (comma-separated: {','.join(PEERS)}); "
                       "CPU only")
    peers.add_argument("--reps", type=int, default=10, help="timed interleaved rounds (after one warm-up round)")
    peers.add_argument("--rtol", type=float, default=1e-4,
                       help="gradient check: max |g - g_ours| <= rtol * max |g_ours| (float32)")
    peers.add_argument("--check-float64", action="store_true", help="also compare every implementation in float64")
    peers.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    peers.add_argument("--out", type=Path, default=Path("data/maml/peers_cpu"),
                       help="write OUT.json and OUT.md (default data/maml/peers_cpu)")
    peers.add_argument("--render", type=Path, metavar="JSON",
                       help="recompute the summary of a peers JSON from its raw times; rewrite it and its .md")
    peers.add_argument("--memory-probe", help=argparse.SUPPRESS)  # internal: one implementation, fresh process
    peers.add_argument("--probe-order", choices=("second", "first"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.render:
        record = summarise(json.loads(args.render.read_text()))
        record["rendered"] = {"command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
                              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        args.render.write_text(json.dumps(record, indent=2) + "\n")
        args.render.with_suffix(".md").write_text(peers_markdown(record))
        print(peers_markdown(record))
        return
    if args.peers or args.memory_probe:
        config = maml.default_config("omniglot", "maml", args.ways, hidden=args.hidden, shots=args.shots,
                                     **({"meta_batch": args.meta_batch} if args.meta_batch else {}))
        if args.memory_probe:
            print(json.dumps(memory_probe(args.memory_probe, config, args.probe_order == "first")))
            return
        if get_device(args.device or "cpu").type != "cpu":
            parser.error("--peers measures on the CPU only (use --device cpu)")
        record = run_peers(args, config)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(peers_markdown(record))
        print(peers_markdown(record))
        return
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
