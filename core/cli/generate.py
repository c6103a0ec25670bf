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
from collections.abc import Callable, Iterator
from pathlib import Path

from core.engine import (
    ChatMessage,
    DoneEvent,
    EngineConfig,
    ErrorEvent,
    Event,
    GenerationRequest,
    SamplingParams,
    TextEvent,
)
from core.engine.client import EngineClient
from core.engine.sampling import DEFAULT_SEED, PRESETS


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, with a one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


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


def sampling_from_args(args: argparse.Namespace) -> SamplingParams:
    preset = "greedy" if args.temperature == 0 else args.preset
    try:
        return SamplingParams(
            preset=preset, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            min_p=args.min_p, repeat_penalty=args.repeat_penalty, seed=args.seed,
        )
    except ValueError as err:
        from core.errors import ConfigError

        raise ConfigError(f"Invalid sampling setting: {err}.") from err


def engine_from_args(args: argparse.Namespace) -> EngineClient:
    """A worker-process engine with the model loaded (a crash in llama.cpp then ends the
    worker, not the command); load notes such as a CPU fallback go to stderr."""
    client = EngineClient()
    try:
        loaded = client.load(EngineConfig(model_path=args.model, n_ctx=args.ctx,
                                          n_threads=args.threads, n_gpu_layers=args.gpu_layers))
    except BaseException:
        client.close()
        raise
    if loaded.fell_back:
        print(f"hearth-cli: {loaded.message}", file=sys.stderr)
    return client


def register(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser("generate", help="generate a reply and stream it to stdout")
    source = gen.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="raw text to complete (no chat template)")
    source.add_argument("--chat", help="a user message, rendered with the chat template")
    gen.add_argument("--system", help="system prompt (with --chat)")
    gen.add_argument("--json", action="store_true", help="one JSON object per event")
    add_model_arguments(gen)
    add_sampling_arguments(gen)
    gen.set_defaults(func=run_generate)

    chat = subparsers.add_parser("chat", help="interactive chat in the terminal")
    chat.add_argument("--system", help="system prompt")
    add_model_arguments(chat)
    add_sampling_arguments(chat)
    chat.set_defaults(func=run_chat)


def _request(args: argparse.Namespace, messages: list[ChatMessage] | None) -> GenerationRequest:
    return GenerationRequest(
        messages=messages, prompt=None if messages is not None else args.prompt,
        sampling=sampling_from_args(args), max_tokens=args.max_tokens, stop=args.stop,
    )


def _stats_line(done: DoneEvent) -> str:
    m = done.metrics
    return (f"[{done.finish_reason}; template {done.template or 'none'}; prompt "
            f"{m.prompt_tokens} tok ({m.cached_tokens} cached) at {m.prefill_tok_s:.1f} tok/s; "
            f"{m.decode_tokens} tok at {m.decode_tok_s:.1f} tok/s; TTFT {m.ttft_ms:.0f} ms]")


def _print_stream(events: Iterator[Event], as_json: bool) -> DoneEvent | ErrorEvent:
    """Write events to stdout as they come; returns the final event."""
    out = sys.stdout
    for event in events:
        if as_json:
            out.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            out.flush()
        elif isinstance(event, TextEvent):
            out.write(event.text)
            out.flush()
        if isinstance(event, DoneEvent | ErrorEvent):
            return event
    raise AssertionError("the engine ended a stream without a final event")


def run_generate(args: argparse.Namespace) -> int:
    messages = None
    if args.chat is not None:
        messages = [ChatMessage("system", args.system)] if args.system else []
        messages.append(ChatMessage("user", args.chat))
    request = _request(args, messages)
    with engine_from_args(args) as engine:
        final = _print_stream(engine.generate(request), args.json)
    if isinstance(final, ErrorEvent):
        if not args.json:
            print(file=sys.stdout)
        print(f"hearth-cli: error: {final.message}", file=sys.stderr)
        return 1
    if not args.json:
        print()
        print(_stats_line(final), file=sys.stderr)
    return 0


def run_chat(args: argparse.Namespace) -> int:
    """A REPL: Ctrl-C during a reply stops the reply, not the program; /reset, /exit."""
    messages: list[ChatMessage] = [ChatMessage("system", args.system)] if args.system else []
    with engine_from_args(args) as engine:
        loaded = engine.loaded
        assert loaded is not None
        print(f"Hearth chat with {loaded.model_name} (template {loaded.template}, "
              f"{loaded.placement}). "
              "Type /exit to quit, /reset to start over.", file=sys.stderr)
        previous = signal.getsignal(signal.SIGINT)
        while True:
            try:
                line = input("> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            if line.strip() in {"/exit", "/quit"}:
                return 0
            if line.strip() == "/reset":
                messages = messages[:1] if args.system else []
                continue
            if not line.strip():
                continue
            messages.append(ChatMessage("user", line))
            signal.signal(signal.SIGINT, lambda *_: engine.cancel())
            try:
                final = _print_stream(engine.generate(_request(args, messages)), False)
            finally:
                signal.signal(signal.SIGINT, previous)
            print()
            if isinstance(final, ErrorEvent):
                print(f"hearth-cli: error: {final.message}", file=sys.stderr)
                messages.pop()
                continue
            messages.append(ChatMessage("assistant", final.text))
            print(_stats_line(final), file=sys.stderr)
