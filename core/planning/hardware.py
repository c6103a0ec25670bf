"""What this machine has to run a model with: CPU, RAM, NVIDIA GPUs and llama.cpp's devices.

The planner budgets from *free* memory (other programs' VRAM counts: ollama #3765), so the
probe records free as well as total. Every source may be missing or broken — no NVML library,
no GPU, NVML raising, a CPU-only llama.cpp — and each failure degrades to a CPU-only profile
with the reason written in ``notes`` rather than an exception. A profile is plain data and
round-trips through JSON, so a user (and the tests) can plan for a machine they are not on.
Collaborators (the NVML module, llama.cpp's device lister) are parameters with defaults, so
tests pass real alternatives instead of patching.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import platform
import re
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from core.errors import ConfigError

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1 << 10,
    "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1000**4, "tib": 1 << 40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float, what: str = "size") -> int:
    """Bytes from '8GiB', '16 GB', '512MiB', '8G' (binary) or a plain number of bytes."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ConfigError(f"{what} must not be negative (got {text}).")
        return int(text)
    match = _SIZE_RE.match(str(text))
    unit = match[2].lower() if match else None
    if not match or unit not in _UNITS:
        raise ConfigError(f"{what}: {text!r} is not a size; write it like 8GiB, 16GB or 512MiB.")
    return int(float(match[1]) * _UNITS[unit])


def format_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


@dataclass
class GpuInfo:
    """One GPU as NVML (or the user) describes it; sizes in bytes."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int = 0
    power_limit_w: float | None = None
    driver: str | None = None


@dataclass
class BackendDevice:
    """A device llama.cpp itself can use (``ggml_backend_dev_*``)."""

    name: str
    description: str
    type: str  # cpu | gpu | igpu | accel
    free_bytes: int
    total_bytes: int


@dataclass
class HardwareProfile:
    """The machine a plan is for. ``notes`` says why anything is missing."""

    cpu_model: str
    physical_cores: int
    logical_cores: int
    ram_total_bytes: int
    ram_available_bytes: int
    gpus: list[GpuInfo] = field(default_factory=list)
    llama_devices: list[BackendDevice] = field(default_factory=list)
    gpu_offload_supported: bool = False
    source: str = "probe"  # probe | file | manual
    notes: list[str] = field(default_factory=list)

    @property
    def best_gpu(self) -> GpuInfo | None:
        return max(self.gpus, key=lambda g: g.free_bytes, default=None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def save(self, path: Path | str) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def from_dict(cls, data: Any, origin: str = "the profile") -> HardwareProfile:
        """Strictly rebuild a profile; a missing or mistyped field is one clear error."""
        if not isinstance(data, dict):
            raise ConfigError(f"{origin} is not a JSON object; write it with `hearth-cli plan "
                              f"--save-hardware FILE` or see the documented fields.")
        values = _checked(cls, data, origin, nested={"gpus": GpuInfo,
                                                     "llama_devices": BackendDevice})
        values.setdefault("source", "file")
        return cls(**values)

    @classmethod
    def load(cls, path: Path | str) -> HardwareProfile:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise ConfigError(f"Hardware profile {path} does not exist; check the path.") from err
        except (OSError, ValueError) as err:
            raise ConfigError(f"Hardware profile {path} is not valid JSON ({err}).") from err
        profile = cls.from_dict(data, f"Hardware profile {path}")
        profile.source = "file"
        return profile


_REQUIRED_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int, "str": str, "float | None": (int, float, type(None)),
    "str | None": (str, type(None)), "bool": bool,
}


def _checked(cls: type, data: dict, origin: str, nested: dict[str, type] | None = None
             ) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is not MISSING or f.default_factory is not MISSING:
                continue
            raise ConfigError(f"{origin} lacks the field {f.name!r}; add it (see "
                              f"`hearth-cli plan --save-hardware` for a complete example).")
        value = data[f.name]
        if nested and f.name in nested:
            if not isinstance(value, list):
                raise ConfigError(f"{origin}: field {f.name!r} must be a list.")
            values[f.name] = [_build(nested[f.name], v, f"{origin}, {f.name}[{i}]")
                              for i, v in enumerate(value)]
            continue
        expected = _REQUIRED_TYPES.get(str(f.type))
        if expected is not None and (not isinstance(value, expected) or (
                expected is int and isinstance(value, bool))):
            raise ConfigError(f"{origin}: field {f.name!r} has the wrong type "
                              f"({type(value).__name__}, expected {f.type}).")
        values[f.name] = value
    return values


def _build(cls: type, data: Any, origin: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a JSON object.")
    return cls(**_checked(cls, data, origin))


# --- probing -------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvml(module: ModuleType | None) -> tuple[list[GpuInfo], str | None]:
    """GPUs through NVML, or ([], reason). ``module`` is the pynvml module (None: import it)."""
    nvml: Any = module
    if nvml is None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError as err:
            return [], f"NVML is not available ({err}); planning for the CPU only."
        nvml = pynvml
    try:
        nvml.nvmlInit()
    except Exception as err:
        return [], f"NVML could not start ({_text(err) or type(err).__name__}); no NVIDIA GPU used."
    gpus: list[GpuInfo] = []
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                power = nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0
            except Exception:
                power = None
            gpus.append(GpuInfo(index=i, name=_text(nvml.nvmlDeviceGetName(handle)),
                                total_bytes=int(mem.total), free_bytes=int(mem.free),
                                used_bytes=int(mem.used), power_limit_w=power, driver=driver))
    except Exception as err:
        return [], f"NVML failed while listing GPUs ({_text(err) or type(err).__name__})."
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    if not gpus:
        return [], "NVML found no NVIDIA GPU."
    return gpus, None


_DEV_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


def probe_llama_devices() -> tuple[list[BackendDevice], bool]:
    """The devices llama.cpp's backends report, and whether GPU offload is compiled in."""
    import llama_cpp

    from core.gguf.native import ggml_library

    ggml = ggml_library("ggml")
    base = ggml_library("ggml-base")
    p, sz = ctypes.c_void_p, ctypes.c_size_t
    ggml.ggml_backend_dev_count.restype = sz
    ggml.ggml_backend_dev_get.restype, ggml.ggml_backend_dev_get.argtypes = p, [sz]
    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(base, fn).restype, getattr(base, fn).argtypes = ctypes.c_char_p, [p]
    base.ggml_backend_dev_type.restype, base.ggml_backend_dev_type.argtypes = ctypes.c_int, [p]
    base.ggml_backend_dev_memory.argtypes = [p, ctypes.POINTER(sz), ctypes.POINTER(sz)]
    devices = []
    for i in range(ggml.ggml_backend_dev_count()):
        dev = ggml.ggml_backend_dev_get(i)
        free, total = sz(0), sz(0)
        base.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        devices.append(BackendDevice(
            name=_text(base.ggml_backend_dev_name(dev)),
            description=_text(base.ggml_backend_dev_description(dev)),
            type=_DEV_TYPES.get(base.ggml_backend_dev_type(dev), "other"),
            free_bytes=int(free.value), total_bytes=int(total.value)))
    return devices, bool(llama_cpp.llama_supports_gpu_offload())


LlamaProbe = Callable[[], tuple[list[BackendDevice], bool]]


def probe(nvml: ModuleType | None = None, llama_probe: LlamaProbe | None = probe_llama_devices
          ) -> HardwareProfile:
    """Probe this machine. Never raises for a missing GPU stack: the reason goes in notes."""
    vm = psutil.virtual_memory()
    gpus, reason = probe_nvml(nvml)
    notes = [reason] if reason else []
    devices: list[BackendDevice] = []
    offload = False
    if llama_probe is not None:
        try:
            devices, offload = llama_probe()
        except Exception as err:  # a broken llama.cpp install must not break planning
            notes.append(f"llama.cpp devices could not be listed ({err}).")
    if gpus and llama_probe is not None and not offload:
        notes.append("This llama.cpp build has no GPU support; layers will run on the CPU.")
    return HardwareProfile(
        cpu_model=cpu_model(),
        physical_cores=psutil.cpu_count(logical=False) or 1,
        logical_cores=psutil.cpu_count(logical=True) or 1,
        ram_total_bytes=int(vm.total),
        ram_available_bytes=int(vm.available),
        gpus=gpus, llama_devices=devices, gpu_offload_supported=offload or False,
        source="probe", notes=notes,
    )


def manual_profile(vram: str | None, ram: str | None, base: HardwareProfile | None = None
                   ) -> HardwareProfile:
    """A profile from ``--vram X --ram Y``: one GPU with X free (0/None = none), Y RAM free."""
    vram_b = parse_size(vram, "--vram") if vram is not None else 0
    if ram is not None:
        ram_b = parse_size(ram, "--ram")
        cpu, phys, logi = "unspecified CPU", 8, 16
    elif base is not None:
        ram_b, cpu = base.ram_available_bytes, base.cpu_model
        phys, logi = base.physical_cores, base.logical_cores
    else:
        raise ConfigError("Give --ram together with --vram (e.g. --vram 8GiB --ram 16GiB).")
    gpus = [GpuInfo(0, "GPU (given on the command line)", vram_b, vram_b)] if vram_b else []
    return HardwareProfile(cpu_model=cpu, physical_cores=phys, logical_cores=logi,
                           ram_total_bytes=ram_b, ram_available_bytes=ram_b, gpus=gpus,
                           gpu_offload_supported=bool(gpus), source="manual")
