"""What one VSML meta-step costs (notebook 07, section 8): wall time and the memory backpropagation keeps."""

from __future__ import annotations

import time

import torch

from ..vsml import LEARNER_CLASSES, VSMLConfig, meta_parameter_count, meta_step


def meta_step_cost(config: VSMLConfig, repeats: int = 3, device="cpu", seed: int = 0) -> dict:
    """One :func:`~course_lib.vsml.meta_step` of ``config`` on random streams, measured.

    Returns the wall seconds (median of ``repeats``), the bytes of the tensors
    autograd saves for the backward pass (unique storages, counted by
    ``saved_tensors_hooks``) and on a GPU the peak allocated memory.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    model = LEARNER_CLASSES[config.learner](config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(config.meta_batch, config.stream_length, config.input_size, generator=g).to(device)
    ys = torch.randint(0, config.ways, (config.meta_batch, config.stream_length), generator=g).to(device)
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr(), storage.nbytes()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        meta_step(model, optimizer, config, xs, ys)  # warm-up, and the saved-tensor count
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        meta_step(model, optimizer, config, xs, ys)
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return {"seconds": sorted(times)[len(times) // 2], "saved_for_backward_mb": sum(saved.values()) / 2**20,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
            "meta_parameters": meta_parameter_count(model), "device": str(device)}
