"""``hearth-cli plan``: which quant, how many GPU layers and what context fit this machine.

Examples::

    hearth-cli plan --model model.gguf --ctx 8192
    hearth-cli plan --repo TheBloke/Llama-2-7B-GGUF --vram 8GiB --ram 16GiB
    hearth-cli plan --model a.gguf --hardware laptop.json --json
    hearth-cli plan --model a.gguf --verify          # predicted vs measured RSS, real loads
    hearth-cli plan --profile real-time-chat --json  # a profile made concrete, from the library
    hearth-cli plan --profiles                       # the built-in and your own profiles

With ``--repo`` only each file's header is fetched (HTTP range requests against
``HF_ENDPOINT``), so a 40 GB quant is judged from a few MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError, HearthError
from core.gguf.info import ModelInfo
from core.gguf.reader import read_local
from core.models.hub.remote_header import read_remote
from core.planning.hardware import HardwareProfile, format_size, manual_profile, probe
from core.planning.memory_model import LoadConfig, measure_host_memory, predict
from core.planning.planner import Plan, PlanSettings, plan

if TYPE_CHECKING:
    from core.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("plan", help="choose quant, GPU offload and context that fit",
                              description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", type=Path, action="append", help="a local .gguf (repeatable)")
    src.add_argument("--repo", help="a Hugging Face repo id; every .gguf in it is judged")
    p.add_argument("--profile", metavar="NAME",
                   help="plan a profile (real-time-chat, bulk-processing, cost-sensitive, "
                        "high-quality, or your own) over the library, or over --model files")
    p.add_argument("--profiles", action="store_true", help="list the profiles and exit")
    p.add_argument("--revision", default="main", help="repo revision (default: main)")
    p.add_argument("--ctx", type=int, help="wanted context length (default: min(8192, trained))")
    p.add_argument("--ctx-floor", type=int, default=2048,
                   help="never shrink the context below this (default: 2048)")
    p.add_argument("--draft", type=Path, help="draft model for speculative decoding")
    hw = p.add_mutually_exclusive_group()
    hw.add_argument("--hardware", type=Path, help="plan for the machine in this profile JSON")
    hw.add_argument("--vram", help="free VRAM of the target GPU, e.g. 8GiB (0 = no GPU)")
    p.add_argument("--ram", help="available RAM of the target machine, e.g. 16GiB")
    p.add_argument("--max-vram-use", type=float, default=0.90,
                   help="keep the GPU at or below this share of its total memory (default 0.9)")
    p.add_argument("--max-ram-use", type=float, default=0.85,
                   help="use at most this share of available RAM (default 0.85)")
    p.add_argument("--save-hardware", type=Path, help="write the hardware profile used to FILE")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--verify", action="store_true",
                   help="load each --model on the CPU and compare predicted and measured RAM")
    p.set_defaults(func=run)


def _hardware(args: argparse.Namespace) -> HardwareProfile:
    if args.hardware is not None:
        if args.ram is not None:
            raise ConfigError("Give either --hardware or --vram/--ram, not both.")
        return HardwareProfile.load(args.hardware)
    if args.vram is not None or args.ram is not None:
        return manual_profile(args.vram, args.ram, base=None if args.ram else probe())
    return probe()


def repo_candidates(repo_id: str, revision: str = "main", endpoint: str | None = None
                    ) -> list[tuple[str, ModelInfo]]:
    """Every single-file (or first-shard) .gguf of a Hub repo, read by header only."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import HfHubHTTPError

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    api = HfApi(endpoint=endpoint)
    try:
        files = api.list_repo_files(repo_id, revision=revision)
    except HfHubHTTPError as err:
        raise ConfigError(f"Cannot list the repository {repo_id} ({err}); check its name.") from err
    except Exception as err:
        raise ConfigError(f"Cannot reach the Hub for {repo_id} ({err}); check the network.") \
            from err
    ggufs = [f for f in files if f.lower().endswith(".gguf") and "mmproj" not in f.lower()
             and ("-of-" not in f or "-00001-of-" in f)]
    if not ggufs:
        raise ConfigError(f"The repository {repo_id} has no GGUF files; pick a repo that "
                          f"publishes .gguf quantizations.")
    out = []
    for name in sorted(ggufs):
        url = f"{endpoint.rstrip('/')}/{repo_id}/resolve/{revision}/{name}"
        out.append((name, read_remote(url)))
    return out


def _print_plan(result: Plan, hw: HardwareProfile) -> None:
    gpu = hw.best_gpu
    where = f"{gpu.name}, {format_size(gpu.free_bytes)} free" if gpu else "no GPU"
    print(f"Machine: {hw.cpu_model}, {format_size(hw.ram_available_bytes)} RAM available; "
          f"{where} (profile: {hw.source})")
    print(f"Budgets: VRAM {format_size(result.vram_budget)}, RAM {format_size(result.ram_budget)}")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"{'':2}{'file':44} {'type':7} {'bpw':>5}  {'status':34} {'ctx':>6} "
          f"{'RAM':>10} {'VRAM':>10}")
    for f in result.files:
        mark = "*" if f is result.chosen else " "
        est = f.estimate
        print(f"{mark} {f.label[:44]:44} {f.info.file_type_name:7} {f.bits_per_weight:5.2f}  "
              f"{f.status:34} {f.n_ctx:>6} {format_size(est.host_bytes) if est else '':>10} "
              f"{format_size(est.vram_bytes) if est else '':>10}")
        print(f"    {f.reason}")
    if result.chosen:
        c = result.chosen
        print(f"Chosen: {c.label} — {c.status}, n_gpu_layers={c.n_gpu_layers}, n_ctx={c.n_ctx}")
    else:
        print("Nothing fits this machine; try a smaller model or a lower --ctx-floor.")


def verify_rows(paths: list[Path], contexts: list[int]) -> list[dict]:
    """Predicted vs measured host memory for real CPU loads (one fresh process each)."""
    rows = []
    for path in paths:
        info = read_local(path)
        for n_ctx in contexts:
            est = predict(info, LoadConfig(n_ctx=n_ctx))
            try:
                measured = measure_host_memory(path, n_ctx)["increase"]
            except Exception as err:
                raise HearthError(f"Measuring {path.name} at n_ctx {n_ctx} failed ({err}).") \
                    from err
            rows.append({"file": path.name, "type": info.file_type_name, "n_ctx": n_ctx,
                         "predicted": est.host_bytes, "measured": measured,
                         "error": est.host_bytes / measured - 1})
    return rows


def print_verify_table(rows: list[dict]) -> None:
    print(f"{'file':44} {'type':7} {'n_ctx':>6} {'predicted':>11} {'measured':>11} {'error':>7}")
    for r in rows:
        print(f"{r['file'][:44]:44} {r['type']:7} {r['n_ctx']:>6} "
              f"{format_size(r['predicted']):>11} {format_size(r['measured']):>11} "
              f"{r['error']:>+7.1%}")


def run(args: argparse.Namespace) -> int:
    if args.profiles:
        return print_profiles(args.json)
    if args.profile:
        return run_profile(args)
    if not args.model and not args.repo:
        raise ConfigError("Give --model FILE, --repo ORG/NAME or --profile NAME.")
    for name in ("max_vram_use", "max_ram_use"):
        if not 0.1 <= getattr(args, name) <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0.1 and 1.0.")
    if args.ctx is not None and args.ctx < 256:
        raise ConfigError("--ctx must be at least 256 tokens.")
    hw = _hardware(args)
    if args.save_hardware:
        hw.save(args.save_hardware)
    if args.model:
        candidates = [(p.name, read_local(p)) for p in args.model]
    else:
        candidates = repo_candidates(args.repo, args.revision)
    draft = read_local(args.draft) if args.draft else None
    settings = PlanSettings(n_ctx=args.ctx, ctx_floor=args.ctx_floor,
                            max_vram_utilisation=args.max_vram_use,
                            max_ram_utilisation=args.max_ram_use)
    result = plan(candidates, hw, settings, draft)
    if args.json:
        json.dump({"hardware": json.loads(hw.to_json()), **result.to_dict()}, sys.stdout,
                  indent=2)
        print()
    else:
        _print_plan(result, hw)
    if args.verify:
        if not args.model:
            raise ConfigError("--verify needs local files (--model); it loads them for real.")
        contexts = [args.ctx] if args.ctx else [512, 4096, 32768]
        print_verify_table(verify_rows(args.model, contexts))
    return 0 if result.chosen else 1


# -- profiles ---------------------------------------------------------------------------
def user_settings() -> Settings:
    """The saved settings; what was wrong with the file is said on stderr (and logged)."""
    from core.settings import load_settings

    problems: list[str] = []
    settings = load_settings(problems=problems)
    for problem in problems:
        print(f"hearth-cli: {problem}", file=sys.stderr)
    return settings


def print_profiles(as_json: bool) -> int:
    profiles = user_settings().all_profiles()
    if as_json:
        json.dump([p.to_dict() for p in profiles.values()], sys.stdout, indent=2)
        print()
        return 0
    print(f"{'name':18} {'precision':9} {'parallel':>8} {'placement':10} {'speculation':11} "
          f"{'ctx/seq':>7} {'sampling':8} {'latency':>8} {'quality':>7}")
    for p in profiles.values():
        print(f"{p.name:18} {p.precision:9} {p.parallel:>8} {p.placement:10} "
              f"{p.speculation:11} {p.n_ctx:>7} {p.sampling:8} {p.latency_target_ms:>6g}ms "
              f"{p.quality_target_pct:>6g}%")
    return 0


def profile_plan(name: str, models: list[Path] | None = None,
                 hardware: HardwareProfile | None = None):
    from core.settings import plan_named_profile

    return plan_named_profile(user_settings(), name, models, hardware)


def run_profile(args: argparse.Namespace) -> int:
    if args.repo:
        raise ConfigError("--profile plans over local files (the library or --model).")
    result = profile_plan(args.profile, args.model, _hardware(args))
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        print()
        return 0 if result.chosen else 1
    p = result.profile
    print(f"Profile: {p.title} ({p.name}) — {p.description}")
    if result.chosen is None:
        print("Nothing fits: " + "; ".join(result.reasons))
        return 1
    print(f"Model: {result.chosen.label} ({result.chosen.info.file_type_name}), "
          f"{result.placement}; {result.parallel} sequence(s) × {result.n_ctx_per_seq:,} "
          f"tokens ({result.n_ctx:,} in all); speculation {result.speculation}; sampling "
          f"{result.sampling['preset']} at temperature {result.sampling['temperature']:g}")
    print(f"Decided from {result.basis} figures. Why:")
    for reason in result.reasons:
        print(f"  - {reason}")
    return 0


def apply_profile(args: argparse.Namespace) -> None:
    """``--profile NAME`` on generate/chat (and, when it lands, serve): the profile's plan
    sets the model, context, GPU layers, speculation and sampling preset. Flags the user
    gave explicitly (``--model``, a non-default ``--temperature``/``--preset``) win."""
    result = profile_plan(args.profile, [args.model] if args.model else None)
    if result.path is None:
        raise ConfigError(f"The {result.profile.title} profile found no model that fits "
                          f"here: " + "; ".join(result.reasons))
    args.model = Path(result.path)
    if getattr(args, "parallel", 1) == 1:  # not asked on the command line
        args.parallel = result.parallel
    # One unified KV cache: the context holds every sequence's share.
    args.ctx = result.n_ctx_per_seq * max(1, getattr(args, "parallel", 1))
    partial = result.chosen is not None and result.chosen.status.startswith("partial")
    args.gpu_layers = result.n_gpu_layers if partial else (-1 if result.n_gpu_layers else 0)
    if getattr(args, "draft", None) is None and not getattr(args, "lookup", False):
        if result.speculation == "twin":
            args.draft = "twin"
        elif result.speculation == "lookup":
            args.lookup = True
    if args.preset == "top-p" and args.temperature == 0.8:  # argparse's defaults: not asked
        args.preset = result.sampling["preset"]
        args.temperature = result.sampling["temperature"]
    label = result.chosen.label if result.chosen else ""
    print(f"hearth-cli: profile {result.profile.name}: {label}, {result.placement}, context "
          f"{result.n_ctx_per_seq}, {result.sampling['preset']}", file=sys.stderr)
