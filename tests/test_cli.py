import json
import re
import sys
import types
from types import SimpleNamespace
from typing import ClassVar

import pytest

import smolrt
from smolrt import cli
from smolrt.errors import ModelLoadError

INFO = {
    "architecture": "llama",
    "name": "Tiny Test",
    "version": None,
    "file_size": 98362432,
    "tensor_count": 272,
    "tensor_types": {"q4_1": 210, "f32": 61, "q8_0": 1},
    "metadata": {
        "general.architecture": "llama",
        "llama.context_length": 8192,
        "llama.embedding_length": 576,
        "llama.block_count": 30,
        "llama.attention.head_count": 9,
        "llama.attention.head_count_kv": 3,
        "llama.feed_forward_length": 1536,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": "<array of 49152>",
        "tokenizer.chat_template": "{{ messages }}",
    },
}


@pytest.fixture
def fake_core(monkeypatch):
    """Stand in for the native module so these tests run without it."""
    calls = []
    core = types.ModuleType("smolrt._core")

    def inspect_gguf(path):
        calls.append(path)
        return INFO

    core.inspect_gguf = inspect_gguf
    monkeypatch.setitem(sys.modules, "smolrt._core", core)
    monkeypatch.setattr(smolrt, "_core", core, raising=False)
    return calls


@pytest.fixture
def gguf_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


# --- parsing ---------------------------------------------------------------


def test_generate_defaults():
    args = cli.build_parser().parse_args(["generate", "hello"])
    assert args.prompt == "hello"
    assert args.max_tokens == 256
    assert args.temperature == 0.7
    assert args.top_p is None and args.top_k is None and args.seed is None
    assert args.raw is False
    assert args.model is None and args.system is None


def test_generate_options():
    args = cli.build_parser().parse_args(
        [
            "generate",
            "hi",
            "--model",
            "m.gguf",
            "--max-tokens",
            "8",
            "--temperature",
            "0",
            "--top-p",
            "0.9",
            "--top-k",
            "40",
            "--seed",
            "7",
            "--raw",
        ]
    )
    assert (args.model, args.max_tokens, args.temperature) == ("m.gguf", 8, 0.0)
    assert (args.top_p, args.top_k, args.seed, args.raw) == (0.9, 40, 7, True)
    assert cli.build_parser().parse_args(["generate", "hi", "--chat"]).raw is False


def test_chat_and_raw_are_exclusive(capsys):
    assert cli.main(["generate", "hi", "--chat", "--raw"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_system_needs_chat_mode(capsys):
    assert cli.main(["generate", "hi", "--raw", "--system", "be brief"]) == 2
    assert "--system" in capsys.readouterr().err


def test_command_is_required(capsys):
    assert cli.main([]) == 2
    assert "required" in capsys.readouterr().err


def test_bad_number_is_usage_error(capsys):
    assert cli.main(["generate", "hi", "--max-tokens", "lots"]) == 2
    assert "invalid int value" in capsys.readouterr().err


def test_help_exits_zero(capsys):
    assert cli.main(["--help"]) == 0
    assert "generate" in capsys.readouterr().out


# --- info --------------------------------------------------------------------


def test_info_json(fake_core, gguf_file, capsys):
    assert cli.main(["info", str(gguf_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == INFO
    assert fake_core == [str(gguf_file)]


def test_info_text(fake_core, gguf_file, capsys):
    assert cli.main(["info", str(gguf_file)]) == 0
    # Labels and values are separated by a run of at least two spaces.
    lines = dict(
        re.split(r" {2,}", line, maxsplit=1)
        for line in capsys.readouterr().out.splitlines()
    )
    assert lines["file"] == f"{gguf_file} (93.8 MiB)"
    assert lines["architecture"] == "llama"
    assert lines["name"] == "Tiny Test"
    assert lines["context length"] == "8192"
    assert lines["embedding"] == "576"
    assert lines["layers"] == "30"
    assert lines["heads"] == "9 (kv 3)"
    assert lines["feed forward"] == "1536"
    assert lines["vocab size"] == "49152"
    assert lines["tensors"] == "272: 210 q4_1, 61 f32, 1 q8_0"
    assert lines["chat template"] == "yes"
    assert lines["tokenizer"] == "gpt2 (pre: smollm)"
    assert "version" not in lines


def test_info_without_chat_template_and_listed_tokens():
    info = dict(INFO, metadata={"tokenizer.ggml.tokens": ["a", "b", "c"]})
    lines = cli.format_info(info, "x.gguf").splitlines()
    assert re.fullmatch(r"chat template +no", lines[-2])
    assert "vocab size      3" in lines


def test_info_missing_file(fake_core, tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "absent.gguf")]) == 2
    assert capsys.readouterr().err.startswith("error[not_found]: no such file")
    assert fake_core == []


def test_info_native_error_is_reported(monkeypatch, gguf_file, capsys):
    core = types.ModuleType("smolrt._core")

    def inspect_gguf(path):
        raise ModelLoadError("not a GGUF file (bad magic)")

    core.inspect_gguf = inspect_gguf
    monkeypatch.setitem(sys.modules, "smolrt._core", core)
    monkeypatch.setattr(smolrt, "_core", core, raising=False)
    assert cli.main(["info", str(gguf_file)]) == 2
    assert capsys.readouterr().err == "error[model_load]: not a GGUF file (bad magic)\n"


# --- generate ------------------------------------------------------------------


def _delta(text):
    return SimpleNamespace(type="delta", text=text)


FINISHED = SimpleNamespace(
    type="finished",
    reason="length",
    usage=SimpleNamespace(prompt_tokens=12, completion_tokens=3),
    timings=SimpleNamespace(
        prefill_tokens_per_s=812.34, decode_tokens_per_s=95.06, ttft_ms=21.7
    ),
)


class FakeStream:
    def __init__(self, events, interrupt_after=None):
        self.events = list(events)
        self.interrupt_after = interrupt_after
        self.closed = False

    def __iter__(self):
        for index, event in enumerate(self.events):
            if index == self.interrupt_after:
                raise KeyboardInterrupt
            yield event

    def close(self):
        self.closed = True


class FakeEngine:
    loaded: ClassVar[list[str]] = []
    calls: ClassVar[list[tuple]] = []
    stream: ClassVar[FakeStream | None] = None

    @classmethod
    def load(cls, path):
        cls.loaded.append(path)
        return cls()

    def chat(self, messages, **options):
        FakeEngine.calls.append(("chat", messages, options))
        return FakeEngine.stream

    def generate(self, prompt, **options):
        FakeEngine.calls.append(("generate", prompt, options))
        return FakeEngine.stream


@pytest.fixture
def engine(monkeypatch):
    FakeEngine.loaded, FakeEngine.calls = [], []
    FakeEngine.stream = FakeStream([_delta("Hel"), _delta("lo"), _delta(""), FINISHED])
    monkeypatch.setattr(smolrt, "Engine", FakeEngine, raising=False)
    return FakeEngine


def test_generate_chat_streams_and_summarises(engine, gguf_file, capsys):
    code = cli.main(
        [
            "generate",
            "Say hello",
            "--model",
            str(gguf_file),
            "--system",
            "Be brief",
            "--seed",
            "3",
            "--max-tokens",
            "3",
        ]
    )
    assert code == 0
    assert engine.loaded == [str(gguf_file)]
    assert engine.calls == [
        (
            "chat",
            [
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": "Say hello"},
            ],
            {"max_tokens": 3, "temperature": 0.7, "seed": 3},
        )
    ]
    out, err = capsys.readouterr()
    assert out == "Hello\n"
    assert err == (
        "[length] 12 prompt + 3 generated tokens | prefill 812.3 tok/s, "
        "decode 95.1 tok/s, first token after 22 ms\n"
    )
    assert engine.stream.closed


def test_generate_raw(engine, gguf_file, capsys):
    code = cli.main(
        [
            "generate",
            "Once upon",
            "--raw",
            "-m",
            str(gguf_file),
            "--top-p",
            "0.5",
            "--top-k",
            "20",
            "--temperature",
            "0",
        ]
    )
    assert code == 0
    assert engine.calls == [
        (
            "generate",
            "Once upon",
            {"max_tokens": 256, "temperature": 0.0, "top_p": 0.5, "top_k": 20},
        )
    ]
    assert capsys.readouterr().out == "Hello\n"


def test_generate_prompt_from_stdin(engine, gguf_file, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(read=lambda: "from stdin"))
    assert cli.main(["generate", "-", "--raw", "-m", str(gguf_file)]) == 0
    assert engine.calls[0][1] == "from stdin"


def test_generate_no_extra_newline(engine, gguf_file, capsys):
    engine.stream = FakeStream([_delta("line\n"), FINISHED])
    assert cli.main(["generate", "x", "-m", str(gguf_file)]) == 0
    assert capsys.readouterr().out == "line\n"


def test_generate_uses_default_model(engine, gguf_file, monkeypatch, capsys):
    monkeypatch.setenv("SMOLRT_MODEL", str(gguf_file))
    assert cli.main(["generate", "x"]) == 0
    assert engine.loaded == [str(gguf_file)]


def test_generate_without_model_reports_how_to_pull(engine, monkeypatch, capsys):
    def resolve_model(path):
        assert path is None
        raise ModelLoadError("no model given and the default model is not installed")

    monkeypatch.setattr(cli, "resolve_model", resolve_model)
    assert cli.main(["generate", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error[model_load]: no model given")
    assert engine.loaded == []


def test_generate_load_error(engine, gguf_file, monkeypatch, capsys):
    def load(path):
        raise ModelLoadError("unsupported architecture 'mamba'")

    monkeypatch.setattr(FakeEngine, "load", staticmethod(load))
    assert cli.main(["generate", "x", "-m", str(gguf_file)]) == 2
    assert (
        capsys.readouterr().err
        == "error[model_load]: unsupported architecture 'mamba'\n"
    )


def test_generate_ctrl_c(engine, gguf_file, capsys):
    engine.stream = FakeStream([_delta("a"), _delta("b"), FINISHED], interrupt_after=1)
    assert cli.main(["generate", "x", "-m", str(gguf_file)]) == 130
    assert capsys.readouterr().out == "a"
    assert engine.stream.closed
