"""``hearth-cli generate`` and ``hearth-cli chat``: stream tokens from a model to the terminal.

Text goes to stdout as it decodes, flushed per event; ``--json`` prints one JSON object per
event instead (``token`` events, then ``done`` with the finish reason and the metrics, or
``error``). A short statistics line goes to stderr so piping stdout stays clean.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.arguments import at_least
from cli.plan import apply_profile
from core.engine import (
    ChatMessage,
    DoneEvent,
    EngineConfig,
    ErrorEvent,
    Event,
    GenerationRequest,
    SamplingParams,
    TextEvent,
    push,
)
from core.engine.process.client import EngineClient
from core.engine.process.worker import WorkerOptions
from core.engine.push import Final
from core.engine.sampling import DEFAULT_SEED, PRESETS, Preset
from core.telemetry import TelemetrySampler, account

if TYPE_CHECKING:
    from core.engine.remote import RemoteBackend


_positive_int = at_least(1)
_non_negative_int = at_least(0)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that loads a model."""
    parser.add_argument("--model", type=Path, help="GGUF file (default: the bundled model)")
    parser.add_argument("--ctx", type=_positive_int, default=4096, help="context length")
    parser.add_argument("--threads", type=_positive_int, help="CPU threads (default: cores)")
    parser.add_argument("--gpu-layers", type=int, default=-1,
                        help="layers to offload to the GPU (-1 all, 0 none)")
    parser.add_argument("--parallel", type=_positive_int, default=1,
                        help="requests decoded together (sequences sharing the context)")
    parser.add_argument("--profile", metavar="NAME", help="run as a profile plans it "
                        "(real-time-chat, bulk-processing, cost-sensitive, high-quality...)")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Decoding flags; ``--temperature 0`` means greedy whatever the preset."""
    parser.add_argument("--preset", choices=PRESETS, default="top-p")
    parser.add_argument("--temperature", type=_non_negative_float, default=0.8)
    parser.add_argument("--top-k", type=_positive_int, default=40)
    parser.add_argument("--top-p", type=_non_negative_float, default=0.95)
    parser.add_argument("--min-p", type=_non_negative_float, default=0.05)
    parser.add_argument("--repeat-penalty", type=_non_negative_float, default=1.0)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--max-tokens", type=_non_negative_int, default=512)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def add_speculation_arguments(parser: argparse.ArgumentParser) -> None:
    """Speculative decoding: ``--draft PATH`` or ``--draft twin`` or ``--lookup``."""
    spec = parser.add_mutually_exclusive_group()
    spec.add_argument("--draft", metavar="PATH|twin",
                      help="speculate with a small draft GGUF of the same family, or 'twin' "
                           "for the model's own Q4 twin (made and cached on first use)")
    spec.add_argument("--lookup", action="store_true",
                      help="speculate by copying from the prompt (n-gram prompt lookup)")
    parser.add_argument("--draft-max", type=_positive_int, default=16,
                        help="most tokens guessed per round (default 16; adapts below it)")


def _speculation_config(args: argparse.Namespace) -> dict[str, object]:
    """EngineConfig fields for the speculation flags; makes the twin here, with a progress
    line, so the worker finds it cached."""
    draft, lookup = getattr(args, "draft", None), getattr(args, "lookup", False)
    if lookup:
        return {"draft": "lookup", "draft_max": args.draft_max}
    if draft is None:
        return {}
    if draft == "twin":
        from core.engine.speculative.twin import ensure_twin
        from core.gguf.quantize import QuantizeProgress
        from core.models.bundled import default_model_path

        def show(p: QuantizeProgress) -> None:
            print(f"\rhearth-cli: making the quantized twin: {p.done}/{p.total} tensors",
                  end="", file=sys.stderr, flush=True)

        twin = ensure_twin(args.model or default_model_path(), progress=show)
        print(f"\rhearth-cli: quantized twin: {twin}", file=sys.stderr)
        return {"draft": "twin", "draft_max": args.draft_max}
    return {"draft": "model", "draft_model_path": Path(draft), "draft_max": args.draft_max}


def sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    preset: Preset = "greedy" if args.temperature == 0 else args.preset
    try:
        return SamplingParams(
            preset=preset, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            min_p=args.min_p, repeat_penalty=args.repeat_penalty, seed=args.seed,
        )
    except ValueError as err:
        from core.errors import ConfigError

        raise ConfigError(f"Invalid sampling setting: {err}.") from err


def engine_from_args(args: argparse.Namespace) -> EngineClient | RemoteBackend:
    """A worker-process engine with the model loaded (a crash in llama.cpp then ends the
    worker, not the command); load notes such as a CPU fallback go to stderr."""
    if getattr(args, "engine", None):
        return remote_engine_from_args(args)
    speculation = _speculation_config(args)
    client = EngineClient(WorkerOptions(verbose=getattr(args, "verbose", False)))
    n_seq = max(args.parallel, getattr(args, "beams", 1))
    try:
        loaded = client.load(EngineConfig(model_path=args.model, n_ctx=args.ctx,
                                          n_threads=args.threads, n_gpu_layers=args.gpu_layers,
                                          n_seq_max=n_seq,
                                          **speculation))  # type: ignore[arg-type]
    except BaseException:
        client.close()
        raise
    if loaded.fell_back:
        print(f"hearth-cli: {loaded.message}", file=sys.stderr)
    return client


def add_engine_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", metavar="URL",
                        help="run on a remote OpenAI-compatible engine at URL "
                             "(http://host:port/v1); --model then names one of its models. "
                             "Key: $HEARTH_ENGINE_KEY or the one saved in Settings › Engines")


def remote_engine_from_args(args: argparse.Namespace) -> RemoteBackend:
    """``--engine URL``: a remote engine, checked to answer and to serve ``--model`` (default:
    the first model it lists). No flag takes the key: flags end up in the log and in the
    shell's history."""
    from core.engine.remote import connect
    from core.errors import ConfigError

    if getattr(args, "draft", None) or getattr(args, "lookup", False):
        raise ConfigError("Speculative decoding (--draft, --lookup) needs a local model; "
                          "a remote engine decodes as it is configured.")
    backend = connect(args.engine, model=str(args.model) if args.model else None)
    try:
        backend.load()
    except BaseException:
        backend.close()
        raise
    return backend


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser("generate", help="generate a reply and stream it to stdout")
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="raw text to complete (no chat template)")
    source.add_argument("--chat", help="a user message, rendered with the chat template")
    source.add_argument("--prompt-file", type=Path, metavar="FILE",
                        help="one prompt per line, all run at once (see --parallel)")
    gen.add_argument("--chat-lines", action="store_true",
                     help="with --prompt-file: each line is a user message, not raw text")
    gen.add_argument("--system", help="system prompt (with --chat)")
    gen.add_argument("--beams", type=_positive_int, default=1,
                     help="beam search over N sequences (greedy, length-normalized)")
    gen.add_argument("--all-beams", action="store_true",
                     help="with --beams: print every hypothesis with its score")
    gen.add_argument("--ignore-eos", action="store_true",
                     help="decode through end-of-text tokens (exact token counts, for benchmarks)")
    gen.add_argument("--json", action="store_true", help="one JSON object per event")
    add_model_arguments(gen)
    add_engine_argument(gen)
    add_speculation_arguments(gen)
    add_sampling_arguments(gen)
    from cli.docs import add_generate_arguments

    add_generate_arguments(gen)  # --docs NAME, --docs-budget N
    gen.set_defaults(func=run_generate)

    chat = subparsers.add_parser("chat", help="interactive chat in the terminal")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--save", action="store_true",
                      help="keep the chat in Hearth's history (the app lists it)")
    add_model_arguments(chat)
    add_engine_argument(chat)
    chat.set_defaults(model=None)  # the bundled chat model (see run_chat)
    add_speculation_arguments(chat)
    add_sampling_arguments(chat)
    chat.set_defaults(func=run_chat)


def _request(args: argparse.Namespace, messages: list[ChatMessage] | None) -> GenerationRequest:
    beams = getattr(args, "beams", 1)
    return GenerationRequest(
        messages=messages, prompt=None if messages is not None else args.prompt,
        sampling=sampling_from_args(args), max_tokens=args.max_tokens, stop=args.stop,
        beams=beams, return_beams=beams > 1 and getattr(args, "all_beams", False),
        ignore_eos=getattr(args, "ignore_eos", False),
    )


def _stats_line(done: DoneEvent) -> str:
    m = done.metrics
    spec = m.speculative
    extra = (f"; {spec['kind']} drafts {spec['accepted']}/{spec['drafted']} accepted, "
             f"x{spec['speedup'] or 0:.2f} vs plain" if spec else "")
    return (f"[{done.finish_reason}; template {done.template or 'none'}; prompt "
            f"{m.prompt_tokens} tok ({m.cached_tokens} cached) at {m.prefill_tok_s:.1f} tok/s; "
            f"{m.decode_tokens} tok at {m.decode_tok_s:.1f} tok/s; TTFT {m.ttft_ms:.0f} ms"
            f"{extra}]")


def _print_stream(engine: EngineClient | RemoteBackend, request: GenerationRequest,
                  as_json: bool, sampler: TelemetrySampler | None = None) -> Final:
    """Run ``request``, writing its events to stdout as they come; returns the final event.
    With a ``sampler``, the JSON ``done`` event carries the request's accounting (breakdown,
    energy, cost).

    The events are written on the thread that receives them from the worker
    (core/engine/push.py) while this one sleeps until the end: waking a second thread per
    token cost the engine's two threads a preemption each on a 2-core machine. A closed
    stdout (``| head``) cancels the request and raises here, on the caller's thread."""
    out = sys.stdout
    broken: list[OSError] = []

    def write(event: Event) -> None:
        if broken:
            return
        try:
            if as_json:
                data = event.to_dict()
                if sampler is not None and isinstance(event, DoneEvent):
                    data["accounting"] = account(sampler, event).to_dict()
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
                out.flush()
            elif isinstance(event, TextEvent):
                out.write(event.text)
                out.flush()
        except OSError as err:
            broken.append(err)
            submission.cancel()

    submission = push.submit(engine, request, write)
    final = submission.run()
    if broken:
        raise broken[0]
    return final


def run_generate(args: argparse.Namespace) -> int:
    if args.profile:
        apply_profile(args)
    if args.prompt_file is not None:
        from cli.parallel import run_parallel

        args.prompt = ""
        with engine_from_args(args) as engine:
            return run_parallel(args, engine, _request(args, None))
    messages = None
    if args.chat is not None:
        messages = [ChatMessage("system", args.system)] if args.system else []
        messages.append(ChatMessage("user", args.chat))
    request = _request(args, messages)
    if args.docs:
        from cli.docs import documents_request

        request = documents_request(args, request)  # retrieval, budget, lookup speculation
    with engine_from_args(args) as engine:
        if args.json:
            loaded = engine.loaded
            remote = loaded is not None and loaded.source == "remote"  # its power is unknown
            with TelemetrySampler(pid=loaded.worker_pid if loaded else None) as sampler:
                final = _print_stream(engine, request, True, None if remote else sampler)
        else:
            final = _print_stream(engine, request, False)
    if isinstance(final, ErrorEvent):
        if not args.json:
            print(file=sys.stdout)
        print(f"hearth-cli: error: {final.message}", file=sys.stderr)
        return 1
    if not args.json:
        print()
        for text, score in final.beams or []:
            print(f"[beam {score:.4f}] {text}", file=sys.stderr)
        print(_stats_line(final), file=sys.stderr)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """A REPL on the chat rules the window uses (core.chat.session): Ctrl-C during a reply
    stops the reply, not the program; /regen asks again, /reset starts over, /exit quits;
    ``--save`` keeps the chat in Hearth's history, where the app lists it."""
    from core.chat.history import HistoryStore
    from core.chat.session import ChatSession

    def report(err: Exception) -> None:
        print(f"hearth-cli: could not save the chat: {err}", file=sys.stderr)

    if args.model is None and not getattr(args, "engine", None):  # an instruct model answers;
        # the base model would continue text (a remote engine names its own model)
        from core.errors import ModelFileError
        from core.models.chat_model import chat_model_path

        try:
            args.model = chat_model_path()
        except ModelFileError as err:
            print(f"hearth-cli: {err} Using the bundled base model.", file=sys.stderr)
    if args.profile:
        apply_profile(args)
    store = HistoryStore() if args.save else None
    session = ChatSession(store, on_error=report)
    sampling = sampling_from_args(args)
    with engine_from_args(args) as engine:
        loaded = engine.loaded
        assert loaded is not None
        session.model_name = loaded.model_name
        print(f"Hearth chat with {loaded.model_name} (template {loaded.template}, "
              f"{loaded.placement}). "
              "Type /exit to quit, /regen to ask again, /reset to start over.", file=sys.stderr)
        previous = signal.getsignal(signal.SIGINT)
        while True:
            try:
                line = input("> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            command = line.strip()
            if command in {"/exit", "/quit"}:
                return 0
            if command == "/reset":
                session.new_chat()
                continue
            if command == "/regen":
                again = session.regenerate(sampling, args.max_tokens, args.stop)
                if again is None:
                    print("hearth-cli: nothing to regenerate yet", file=sys.stderr)
                    continue
                request = again[0]
            elif not command:
                continue
            else:
                request = session.send(line, sampling, args.max_tokens, args.system,
                                       stop=args.stop)
            signal.signal(signal.SIGINT, lambda *_: engine.cancel())
            try:
                final: DoneEvent | ErrorEvent = ErrorEvent("The engine ended without a result.")
                for event in engine.generate(request):
                    if isinstance(event, TextEvent):
                        session.on_text(event.text)
                        sys.stdout.write(event.text)
                        sys.stdout.flush()
                    elif isinstance(event, DoneEvent | ErrorEvent):
                        final = event
            finally:
                signal.signal(signal.SIGINT, previous)
            session.finish(final)
            print()
            if isinstance(final, ErrorEvent):
                print(f"hearth-cli: error: {final.message}", file=sys.stderr)
                continue
            print(_stats_line(final), file=sys.stderr)
