"""User settings: one JSON file in Hearth's home, read and written whole.

Unknown keys are ignored and missing keys take defaults, so settings written by another
version still load; a bad value takes its default alone, and a damaged file is set aside
(renamed) rather than crashing the app.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.engine.config import EngineConfig
from core.engine.sampling import PRESETS, SamplingParams
from core.errors import ConfigError
from core.paths import hearth_home
from core.planning.profiles import Profile, ProfilePlan, all_profiles

_log = logging.getLogger("hearth.settings")


@dataclass
class Settings:
    """What the user can set. ``gpu_layers``: -1 = auto (all that fit), 0 = off, N = layers."""

    threads: int = 0  # 0 = one per physical core
    gpu_layers: int = -1
    n_ctx: int = 4096
    preset: str = "top-p"
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 1024
    memory_headroom_pct: int = 10
    models_dir: str = ""
    offline: bool = False
    last_model: str = ""
    draft: str = ""  # "", "twin", "lookup" or a GGUF path
    electricity_price_kwh: float = 0.15
    # Cost of running here vs the cloud (core.telemetry.cost); defaults are the seed's.
    hardware_price_usd: float = 2000.0
    amortization_months: int = 6
    maintenance_usd_month: float = 0.0
    cloud_usd_per_1k_tokens: float = 0.01
    tokens_per_query: int = 100
    # Profiles (core.planning.profiles): the user's own, the default for new chats and the
    # server's ("" = none: these settings as they are), and each chat's choice by chat id.
    profiles: list[dict[str, Any]] = field(default_factory=list)
    chat_profile: str = ""
    server_profile: str = ""
    chat_profiles: dict[str, str] = field(default_factory=dict)
    window_geometry: str = ""
    # The window as the user left it: docks and their sizes, the chat that was open, and
    # which key sends a message ("enter": Enter sends, Shift+Enter is a newline;
    # "ctrl+enter": Enter is a newline).
    window_state: str = ""
    last_chat_id: int = 0
    send_with: str = "enter"
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad value."""
        if self.threads < 0:
            raise ConfigError("Threads must be 0 (automatic) or more.")
        if self.gpu_layers < -1:
            raise ConfigError("GPU layers must be -1 (automatic), 0 (off) or a layer count.")
        if not 256 <= self.n_ctx <= 1 << 20:
            raise ConfigError("Context length must be between 256 and 1,048,576 tokens.")
        if self.preset not in PRESETS:
            raise ConfigError(f"Unknown decoding preset {self.preset!r}.")
        if not 0 <= self.memory_headroom_pct <= 90:
            raise ConfigError("Memory headroom must be between 0 and 90 percent.")
        if self.send_with not in ("enter", "ctrl+enter"):
            raise ConfigError("Send with must be 'enter' or 'ctrl+enter'.")
        if self.max_tokens < 1:
            raise ConfigError("Maximum reply length must be at least 1 token.")
        try:
            self.sampling()
        except ValueError as err:
            raise ConfigError(f"Invalid decoding setting: {err}.") from err
        if self.hardware_price_usd < 0 or self.maintenance_usd_month < 0:
            raise ConfigError("Hardware price and maintenance must be 0 or more.")
        if self.amortization_months < 1:
            raise ConfigError("Amortization must be at least 1 month.")
        if self.cloud_usd_per_1k_tokens < 0 or self.electricity_price_kwh < 0:
            raise ConfigError("Prices must be 0 or more.")
        if self.tokens_per_query < 1:
            raise ConfigError("A query must have at least 1 token.")
        names = self.all_profiles()
        for chosen in (self.chat_profile, self.server_profile, *self.chat_profiles.values()):
            if chosen and chosen not in names:
                raise ConfigError(f"Unknown profile {chosen!r}; choose one of "
                                  f"{', '.join(names)}.")

    def all_profiles(self) -> dict[str, Profile]:
        """The built-in profiles and the user's."""
        return all_profiles(self.profiles)

    def profile_for_chat(self, chat_id: int | None) -> str:
        """The profile a chat runs with: its own choice, else the default for chats."""
        if chat_id is not None and str(chat_id) in self.chat_profiles:
            return self.chat_profiles[str(chat_id)]
        return self.chat_profile

    def sampling(self) -> SamplingParams:
        preset = "greedy" if self.temperature == 0 else self.preset
        return SamplingParams(preset=preset, temperature=self.temperature,  # type: ignore[arg-type]
                              top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                              repeat_penalty=self.repeat_penalty)

    def engine_config(self, model_path: Path | None) -> EngineConfig:
        """How to load ``model_path`` (None: the bundled default) under these settings."""
        config = EngineConfig(model_path=model_path, n_ctx=self.n_ctx,
                              n_threads=self.threads or None, n_gpu_layers=self.gpu_layers)
        if self.draft in ("twin", "lookup"):
            config.draft = self.draft  # type: ignore[assignment]
        elif self.draft:
            config.draft, config.draft_model_path = "model", Path(self.draft)
        return config


def profile_sampling(plan: ProfilePlan, seed: int | None = None) -> SamplingParams:
    """The sampling preset a profile's plan asks for."""
    params = SamplingParams(preset=plan.sampling["preset"],
                            temperature=plan.sampling["temperature"])
    return params if seed is None else replace(params, seed=seed)


def profile_engine_config(plan: ProfilePlan, threads: int | None = None) -> EngineConfig:
    """How to load a profile's chosen file today: one sequence with the per-sequence
    context. ``plan.parallel`` is the width for the batching engine (``n_seq_max``), which
    takes ``plan.n_ctx`` cells in all once it lands."""
    if plan.path is None:
        raise ConfigError(f"The {plan.profile.title} profile found no model that fits here; "
                          + "; ".join(plan.reasons))
    partial = plan.chosen is not None and plan.chosen.status.startswith("partial")
    layers = plan.n_gpu_layers if partial else (-1 if plan.n_gpu_layers else 0)
    config = EngineConfig(model_path=Path(plan.path), n_ctx=plan.n_ctx_per_seq,
                          n_threads=threads, n_gpu_layers=layers)
    if plan.speculation in ("twin", "lookup"):
        config.draft = plan.speculation  # type: ignore[assignment]
    return config


def plan_named_profile(settings: Settings, name: str, models: list[Path] | None = None,
                       hardware: Any = None) -> ProfilePlan:
    """The plan of profile ``name`` over ``models`` (default: every model in the library) on
    this machine (``hardware``: a HardwareProfile, default: probed), preferring what the
    benchmark measured here. The one entry point for the CLI, the app and the server."""
    from core.gguf.reader import read_local
    from core.planning.hardware import probe
    from core.planning.measured import MeasurementStore
    from core.planning.profiles import library_candidates, plan_profile

    profile = settings.all_profiles().get(name)
    if profile is None:
        raise ConfigError(f"Unknown profile {name!r}; choose one of "
                          f"{', '.join(settings.all_profiles())}.")
    candidates = ([(p.name, read_local(p)) for p in models] if models
                  else library_candidates())
    if not candidates:
        raise ConfigError("The library has no model; download or import one first.")
    return plan_profile(profile, candidates, hardware or probe(), MeasurementStore().by_path())


def settings_path() -> Path:
    return hearth_home() / "settings.json"


def load_settings(path: Path | None = None, problems: list[str] | None = None) -> Settings:
    """The saved settings, or defaults. One bad value costs only itself: it takes its
    default, is named in the log, and the file as it was is kept beside it as
    ``settings.json.bad`` (nothing the user set is lost). A file that is not a JSON object
    at all is renamed ``.bad`` and replaced. Each such problem is also appended to
    ``problems`` (one sentence each) for a front end to show."""
    problems = problems if problems is not None else []
    path = path or settings_path()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as err:
        _log.warning("settings file %s is unreadable (%s); set aside as .bad, defaults used",
                     path, err)
        problems.append(f"The settings file was damaged ({err}); it was kept as "
                        f"{path.with_suffix('.json.bad').name} and the defaults are used.")
        os.replace(path, path.with_suffix(".json.bad"))
        return Settings()
    settings, rejected = Settings(), []
    for f in fields(Settings):  # field order: profiles come before the choices naming them
        if f.name not in data:
            continue
        value = data[f.name]
        try:
            _check_type(f.name, value, getattr(settings, f.name))
            candidate = replace(settings, **{f.name: value})
            candidate.validate()
        except (ConfigError, TypeError, ValueError) as err:
            rejected.append(f.name)
            _log.warning("setting %r = %r ignored, default kept: %s", f.name, data[f.name], err)
            continue
        settings = candidate
    if rejected:
        shutil.copyfile(path, path.with_suffix(".json.bad"))
        problems.append(f"Some settings were invalid and are back to their defaults: "
                        f"{', '.join(rejected)} (the file as it was is kept as "
                        f"{path.with_suffix('.json.bad').name}).")
    return settings


def _check_type(name: str, value: Any, default: Any) -> None:
    """A value read from the file has its setting's type (a whole number where a decimal is
    expected is fine); ``validate`` checks ranges, not types."""
    expected = float if isinstance(default, float) else type(default)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{name} must be {expected.__name__}, not {type(value).__name__}")


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Atomically replace the settings file."""
    settings.validate()
    path = path or settings_path()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(settings), indent=2))
    os.replace(tmp, path)
