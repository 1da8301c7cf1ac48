"""What a meta-gradient costs: time, and the memory autograd keeps for the backward pass.

Notebook 04 (section 5) measures second- against first-order MAML, ANIL,
Meta-SGD and Reptile with :func:`measure_meta_gradient`; the memory is counted
by :class:`SavedTensorMeter`, the same way on every device.
"""

from __future__ import annotations

import time
import weakref

import torch

from .algorithm import MetaLearner, meta_loss, reptile_direction
from .fast import meta_backward_loop, meta_loss_loop


class SavedTensorMeter:
    """Peak bytes of the tensors autograd keeps for the backward pass, while the context is active.

    This is the memory a meta-gradient costs on top of the parameters (the
    activations of every forward pass the backward pass will go through);
    each storage is counted once, and released when the graph that holds it
    is freed.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._live: dict = {}
        self._hooks = None

    def _release(self, key) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[key]

    def _pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), str(tensor.device))
        entry = self._live.setdefault(key, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        holder = _Saved(tensor)
        weakref.finalize(holder, self._release, key)
        return holder

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda holder: holder.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Saved:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def measure_meta_gradient(module: MetaLearner, batch, repeats: int = 3, steps: int | None = None) -> dict:
    """Time and memory of one meta-gradient (forward through the inner loop, then backward) on ``batch``.

    Returns ``{"ms": median milliseconds over repeats (after one warm-up), "graph_mb": peak MB kept for the
    backward pass of the whole meta-batch's graph (:class:`SavedTensorMeter`, :func:`meta_loss_loop`: every
    task's graph, then one backward pass), "task_graph_mb": the same peak when each task's graph is
    differentiated and freed before the next (:func:`meta_backward_loop`, what CPU training does: about
    graph_mb / tasks), "gpu_peak_mb": torch.cuda.max_memory_allocated during one meta-gradient (None off
    CUDA)}``. Reptile builds no graph (0 MB): its cost is the inner loop alone. The timing uses the per-task
    loop on the CPU and vmap elsewhere, like training's ``batching="auto"``.
    """
    config = module.config
    kw = module.objective_kwargs(steps=steps)
    device = next(module.parameters()).device
    batched = device.type != "cpu"

    def once() -> None:
        module.zero_grad(set_to_none=True)
        if config.variant == "reptile":
            reptile_direction(module.theta(), batch, batched=batched, **kw)
        elif batched:
            meta_loss(module.theta(), batch, **kw)[0].backward()
        else:
            meta_backward_loop(module.theta(), batch, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    once()  # warm-up: allocations, kernel choices
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        once()
        times.append(time.perf_counter() - tick)
    gpu_peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        once()
        gpu_peak = round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
    meter, task_meter = SavedTensorMeter(), SavedTensorMeter()
    if config.variant != "reptile":
        with meter:
            loss, _ = meta_loss_loop(module.theta(), batch, **kw)
        loss.backward()
        del loss
        module.zero_grad(set_to_none=True)
        with task_meter:
            meta_backward_loop(module.theta(), batch, **kw)
    module.zero_grad(set_to_none=True)
    return {"ms": round(1000 * sorted(times)[len(times) // 2], 1), "graph_mb": round(meter.peak / 2**20, 2),
            "task_graph_mb": round(task_meter.peak / 2**20, 2), "gpu_peak_mb": gpu_peak}
