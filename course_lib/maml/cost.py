"""What a meta-gradient costs: time, and the memory autograd keeps for the backward pass (notebook 04)."""

import time
import weakref
from collections import Counter

import torch

from .fast import meta_backward_loop, meta_loss_loop
from .training import MetaLearner, meta_gradient


class SavedTensorMeter(torch.autograd.graph.saved_tensors_hooks):
    """Peak bytes of the tensors autograd keeps for the backward pass, while the context is active.

    The memory a meta-gradient costs on top of the parameters, the same way on every device: each storage
    counted once, and released when the graph that holds it is freed.
    """

    def __init__(self) -> None:
        super().__init__(self._pack, lambda holder: holder.tensor)
        self.current = self.peak = 0
        self._holders = Counter()  # storage -> how many saved tensors use it

    def _pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), str(tensor.device))
        if self._holders[key] == 0:
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        self._holders[key] += 1
        holder = _Saved(tensor)
        weakref.finalize(holder, self._release, key, storage.nbytes())
        return holder

    def _release(self, key, nbytes: int) -> None:
        self._holders[key] -= 1
        if self._holders[key] == 0:
            self.current -= nbytes
            del self._holders[key]

    def __enter__(self) -> "SavedTensorMeter":
        super().__enter__()
        return self


class _Saved:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def measure_meta_gradient(module: MetaLearner, batch, repeats: int = 3) -> dict:
    """Time and memory of one meta-gradient (forward through the inner loop, then backward) on ``batch``.

    ``{"ms": median over ``repeats`` after a warm-up (the per-task loop on a CPU, vmap elsewhere, like
    training's ``batching="auto"``), "graph_mb": peak MB kept for the backward pass of the whole
    meta-batch's graph (:func:`meta_loss_loop`), "task_graph_mb": the same when each task's graph is freed
    before the next (:func:`meta_backward_loop`), "gpu_peak_mb": CUDA's peak allocation above the start, or
    None}``. Reptile builds no graph (0 MB): its cost is the inner loop alone.
    """
    device = next(module.parameters()).device

    def once() -> None:
        module.zero_grad(set_to_none=True)
        meta_gradient(module, batch, batched=device.type != "cpu")
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
    if module.config.variant != "reptile":
        kw = module.objective_kwargs()
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
