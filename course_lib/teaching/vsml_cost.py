"""What one VSML meta-step costs: wall time and the memory backpropagation through a stream keeps.

A measurement tool (notebook 07, section 8), not part of the algorithm: it
runs :func:`course_lib.vsml.meta_step` on random streams of a config's size.
"""

from __future__ import annotations

import time

import torch

from ..vsml import LEARNER_CLASSES, VSMLConfig, VSMLLearner, meta_step


def meta_step_cost(config: VSMLConfig, repeats: int = 3, device="cpu", seed: int = 0) -> dict:
    """Measure one meta-step of ``config`` on random streams: wall seconds (median of
    ``repeats``) and the bytes of tensors autograd saves for the backward pass
    (counted by ``saved_tensors_hooks``, unique storages; on a GPU also the peak
    allocated memory). Measured, not estimated."""
    device = torch.device(device)
    torch.manual_seed(seed)
    model = LEARNER_CLASSES[config.learner](config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(config.meta_batch, config.stream_length, config.input_size, generator=g).to(device)
    ys = torch.randint(0, config.ways, (config.meta_batch, config.stream_length), generator=g).to(device)
    seen, saved = set(), [0]

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            saved[0] += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        meta_step(model, optimizer, config, xs, ys)  # warm-up, and the saved-tensor count
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        started = time.perf_counter()
        meta_step(model, optimizer, config, xs, ys)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return {"seconds": sorted(times)[len(times) // 2], "saved_for_backward_mb": saved[0] / 2**20,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "meta_parameters": sum(p.numel() for p in model.parameters()  # the clone readout is unused in scratch
                                   if not (isinstance(model, VSMLLearner) and config.mode == "scratch"
                                           and p is model.weight_readout)),
            "device": str(device)}
