"""The GPU check (``packaging/gpu-check.sh``): CUDA build, then every GPU-path check, in
one run, with one JSON of results and a readable table under ``bench/results/``.

    gpu-check.sh prepare            # where the network is: write the offline kit
    gpu-check.sh [run] [options]    # on the GPU machine: preflight, build, checks

This process imports nothing beyond the standard library and ``bench.gpu``'s plain
modules, so it runs on a bare CUDA image's Python; the checks run in a child interpreter
that imports the CUDA build. Exit codes: 0 every goal met, 1 a goal missed or a check
broke, 2 bad arguments, 3 no NVIDIA GPU, 4 no (complete) CUDA toolkit, 5 no sources, 6 the
build failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gpu import build, kit, report, toolkit  # noqa: E402
from bench.gpu.run_checks import CHECKS, MODELS_ESTIMATE_S  # noqa: E402

PREFLIGHT_ESTIMATE_S = 5


def say(text: str) -> None:
    print(f"[gpu-check] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu-check.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run", "prepare"])
    p.add_argument("--kit", type=Path, default=kit.DEFAULT_KIT, help="offline kit folder")
    p.add_argument("--work", type=Path, default=ROOT / ".cache" / "gpu-check",
                   help="build and model folder (kept: a second run reuses the build)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                   help="where the JSON and the table go")
    p.add_argument("--sources", type=Path, help="llama-cpp-python sdist to build from")
    p.add_argument("--only", help=f"comma-separated checks ({','.join(CHECKS)})")
    p.add_argument("--arch", help="CUDA architecture to build for (default: the GPU's)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="build jobs")
    p.add_argument("--threads", type=int, help="CPU threads for both sides (default: "
                   "one per physical core)")
    p.add_argument("--rounds", type=int, default=3, help="alternating speed rounds")
    p.add_argument("--reps", type=int, default=3, help="repetitions per round and side")
    p.add_argument("--model-dir", type=Path, help="use this folder's Q4_K_M.gguf, Q8_0.gguf "
                   "and F16.gguf instead of making models")
    p.add_argument("--dry-run", action="store_true", help="preflight and plan; build nothing")
    p.add_argument("--deadline-s", type=float, help="finish within this many seconds: checks "
                   "that no longer fit are skipped (reported), the results always written")
    args = p.parse_args(argv)
    selected = args.only.split(",") if args.only else list(CHECKS)
    unknown = [c for c in selected if c not in CHECKS]
    if unknown:
        p.error(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}")
    if args.jobs < 1 or args.rounds < 1 or args.reps < 1:
        p.error("--jobs, --rounds and --reps must be at least 1")
    args.checks = selected
    return args


def physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def preflight(args: argparse.Namespace) -> tuple[dict, build.BuildPlan]:
    """GPU, toolkit, sources and the build plan, or :class:`toolkit.Unmet`."""
    gpus = toolkit.query_gpus()
    archs = args.arch.replace(".", "") if args.arch else toolkit.cuda_architectures(gpus)
    tk = toolkit.find_toolkit()
    tool_dirs = toolkit.find_build_tools()
    pkg_version = kit.pinned_version()
    sources = args.sources or kit.find_sdist(pkg_version, args.kit)
    if not sources.is_file():
        raise toolkit.Unmet(toolkit.EXIT_NO_SOURCES, f"no sources at {sources}")
    pydeps = args.work / "pydeps"
    added = kit.install_pure_deps(args.kit, pydeps) if args.kit.is_dir() else []
    machine = {"gpus": [asdict(g) | {"arch": g.arch} for g in gpus], "cuda": tk.version,
               "toolkit": tk.to_dict(), "cpu_cores": os.cpu_count(),
               "python": platform.python_version(), "added_packages": added}
    backend = find_spec("scikit_build_core") is not None or "scikit-build-core" in added
    plan = build.make_plan(pkg_version, archs, sources, tk, args.work.resolve(), args.jobs,
                           build_python_path=str(pydeps) if added else "",
                           isolated=not backend, tool_dirs=tool_dirs)
    return machine, plan


def checks_env(plan: build.BuildPlan, pydeps: Path) -> dict[str, str]:
    env = dict(os.environ)
    path = [plan.site_dir, str(pydeps) if pydeps.is_dir() else "", str(ROOT),
            env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    lib = [*plan.runtime_dirs, env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in lib if p)
    env.setdefault("HEARTH_HOME", str(Path(plan.build_dir).parent / "hearth-home"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_checks(args: argparse.Namespace, plan: build.BuildPlan, tools: dict) -> dict:
    config = {"checks": args.checks, "work": str(args.work.resolve()), "tools": tools,
              "site_dir": plan.site_dir, "threads": args.threads or physical_cores(),
              "rounds": args.rounds, "reps": args.reps,
              # beside the final results, so a run cut short still hands back what it did
              "results": str(args.out.resolve() / "gpu-check-partial.json"),
              "model_header": str(args.kit / "model" / kit.HEADER_NAME),
              "deadline": args.deadline}
    if args.model_dir:
        config["models"] = {q: str(args.model_dir / f"{q}.gguf")
                            for q in ("Q4_K_M", "Q8_0", "F16")}
    cfg_path = args.work / "checks-config.json"
    cfg_path.write_text(json.dumps(config, indent=2) + "\n")
    results = Path(config["results"])
    results.parent.mkdir(parents=True, exist_ok=True)
    results.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "bench.gpu.run_checks", str(cfg_path)], cwd=ROOT,
                   env=checks_env(plan, args.work / "pydeps"), check=False)
    if not results.is_file():
        return {"checks": [], "phases": [], "error": "the checks process died before "
                                                     "writing any result"}
    state = json.loads(results.read_text())
    results.unlink()  # the full report replaces it
    return state


def keep_build_log(plan: build.BuildPlan, out: Path, lines: int = 3000) -> None:
    """The failed build's log tail beside the results (a remote machine's files are gone
    once it is given back)."""
    log = Path(plan.log)
    if log.is_file():
        out.mkdir(parents=True, exist_ok=True)
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        (out / "gpu-check-build-failed.log").write_text("\n".join(tail) + "\n")


def estimates(args: argparse.Namespace, plan: build.BuildPlan, reuse: bool) -> list[dict]:
    rows = [{"name": "preflight", "estimate_s": PREFLIGHT_ESTIMATE_S},
            {"name": "build", "estimate_s": 5 if reuse else plan.estimate_s()},
            {"name": "models", "estimate_s": MODELS_ESTIMATE_S}]
    rows += [{"name": f"check {c}", "estimate_s": CHECKS[c][2]} for c in args.checks]
    return rows


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    args.deadline = time.time() + args.deadline_s if args.deadline_s else None
    try:
        machine, plan = preflight(args)
    except toolkit.Unmet as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        return err.code
    done = build.built(plan)
    phases = estimates(args, plan, done is not None)
    phases[0]["seconds"] = round(time.monotonic() - t0, 1)
    total = sum(p["estimate_s"] for p in phases)
    say(f"{', '.join(g['name'] for g in machine['gpus'])}; CUDA {machine['cuda']}; "
        f"building for sm_{plan.archs} on {plan.jobs} cores")
    for p in phases:
        say(f"  {p['name']:<16} est. ~{p['estimate_s']:>4} s")
    say(f"  {'total':<16} est. ~{total:>4} s")
    if args.dry_run:
        print(json.dumps({"machine": machine, "plan": plan.to_dict(),
                          "pip": plan.pip_command(), "tools": plan.tool_commands(),
                          "CMAKE_ARGS": plan.env()["CMAKE_ARGS"], "phases": phases}, indent=2))
        return toolkit.EXIT_OK
    t_build = time.monotonic()
    try:
        stamp = build.build(plan, say, args.deadline)
    except toolkit.Unmet as err:
        print(f"gpu-check: {err}", file=sys.stderr)
        keep_build_log(plan, args.out)
        return err.code
    phases[1]["seconds"] = round(time.monotonic() - t_build, 1)
    state = run_checks(args, plan, stamp["tools"])
    phases = phases[:2] + state.get("phases", [])
    rep = report.Report(machine=machine, phases=phases,
                        checks=[report.CheckResult.from_dict(c) for c in state["checks"]])
    rep.build = {"summary": f"llama-cpp-python {plan.pkg_version}, sm_{plan.archs}",
                 "stamp": stamp, "cmake_args": plan.cmake_args,
                 "models": state.get("models"), "model_label": state.get("model_label"),
                 "llama_cpp": state.get("llama_cpp")}
    if state.get("error"):
        rep.checks.append(report.CheckResult(name="setup", title="checks set-up", goal="",
                                             status="error", reason=state["error"]))
    js, md = report.write(rep, args.out)
    print(report.render_markdown(rep))
    say(f"results: {js} and {md}; {time.monotonic() - t0:.0f} s in all")
    return toolkit.EXIT_GOALS_MISSED if rep.failing else toolkit.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "prepare":
        info = kit.prepare(args.kit)
        say(f"kit for llama-cpp-python {info.pkg_version} in {info.path} "
            f"({info.size_bytes / 2**20:.1f} MiB): carry it to the GPU machine")
        return toolkit.EXIT_OK
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
