"""The GPU check (issue 21): build llama.cpp with CUDA for this machine's GPU, then verify
Hearth's GPU path — full and partial offload, the fallback chain, the VRAM prediction, NVML
power and batched decode — against llama.cpp's own CUDA tools, in one run.

Entry point: ``packaging/gpu-check.sh`` (``python -m bench.gpu_check``). The modules here:

* ``toolkit``  — the NVIDIA GPU (nvidia-smi) and the CUDA toolkit pieces a build needs;
* ``kit``      — the offline kit: trimmed sources, the model's header, pure-Python wheels;
* ``build``    — llama-cpp-python and llama-bench / llama-batched-bench, CUDA, one arch;
* ``parse``    — llama-bench JSON and llama-batched-bench output;
* ``report``   — results, goals, the JSON and the readable table;
* ``checks_*`` — the checks, run in a child interpreter that imports the CUDA build.
"""
