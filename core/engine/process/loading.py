"""Loading a model inside the worker: where it goes (GPU layers or CPU), and what is said.

The parent walks the GPU → half → CPU fallback chain (core.engine.process.client); this
module makes one attempt and answers with a :class:`LoadedModelInfo` or a
:class:`LoadFailedEvent` that says whether fewer GPU layers might work.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import replace
from pathlib import Path

import llama_cpp

from core.engine.api import LoadedModelInfo
from core.engine.config import EngineConfig
from core.engine.process.wire import LoadFailedEvent
from core.engine.runtime.session import Engine
from core.errors import HearthError, ModelFileError, UnsupportedModelError


def load_engine(cfg: EngineConfig, fail_gpu_load: str | None
                ) -> tuple[Engine | None, LoadedModelInfo | LoadFailedEvent]:
    """One load attempt. ``fail_gpu_load`` is the test hook of ``WorkerOptions``."""
    t0 = time.perf_counter()
    layers, notes, device = placement(cfg.n_gpu_layers, fail_gpu_load)
    if layers != 0 and fail_gpu_load == "abort":
        os.abort()
    if layers != 0 and fail_gpu_load == "oom":
        return None, LoadFailedEvent(
            "out of memory (cudaMalloc failed; injected by the test hook)",
            "GpuLoadError", True, n_layer_of(cfg.model_path))
    try:
        engine = Engine(replace(cfg, n_gpu_layers=layers))
    except HearthError as err:
        file_problem = isinstance(err, ModelFileError | UnsupportedModelError)
        gpu_related = layers != 0 and not file_problem
        return None, LoadFailedEvent(str(err), type(err).__name__, gpu_related,
                                     n_layer_of(cfg.model_path) if gpu_related else 0)
    model = engine.model
    return engine, LoadedModelInfo(
        model_name=model.name, path=str(model.path), architecture=model.architecture,
        n_layer=model.n_layer, n_params=model.n_params, size_bytes=model.size_bytes,
        n_ctx=engine.n_ctx, n_threads=engine.n_threads, template=engine.template_name,
        gpu_layers_requested=cfg.n_gpu_layers,
        gpu_layers=model.n_layer if layers < 0 else min(layers, model.n_layer),
        device=device, load_ms=(time.perf_counter() - t0) * 1000, notes=notes,
        worker_pid=os.getpid(), n_seq_max=engine.context.n_seq_max)


def placement(requested: int, fail_gpu_load: str | None) -> tuple[int, list[str], str]:
    """The layer count to actually ask llama.cpp for, notes on why, and the device."""
    if requested == 0:
        return 0, [], "CPU"
    if fail_gpu_load:
        return requested, [], "GPU (test hook)"
    from core.planning.hardware import probe_llama_devices

    devices, offload = probe_llama_devices()
    gpus = [d for d in devices if d.type in ("gpu", "igpu")]
    if not offload:
        return 0, ["this llama.cpp build has no GPU support"], "CPU"
    if not gpus:
        return 0, ["no GPU found"], "CPU"
    return requested, [], gpus[0].description or gpus[0].name


def n_layer_of(model_path: Path | None) -> int:
    """The model's layer count (``<arch>.block_count``) from a vocabulary-only load, which
    reads the metadata but no weights."""
    if model_path is None:
        return 0
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    params.n_gpu_layers = 0
    ptr = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
    if not ptr:
        return 0
    try:
        buf = ctypes.create_string_buffer(256)
        key = b"general.architecture"
        if llama_cpp.llama_model_meta_val_str(ptr, key, buf, len(buf)) < 0:
            return 0
        key = buf.value + b".block_count"
        if llama_cpp.llama_model_meta_val_str(ptr, key, buf, len(buf)) < 0:
            return 0
        return int(buf.value or 0)
    finally:
        llama_cpp.llama_model_free(ptr)
