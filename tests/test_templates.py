import os
from datetime import datetime
from pathlib import Path

import pytest

from smolrt.errors import InvalidRequestError, ModelLoadError
from smolrt.templates import ChatTemplate

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SYSTEM = (
    "<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)


def _test_model_path() -> Path:
    env = os.environ.get("SMOLRT_TEST_MODEL")
    if env:
        return Path(env)
    return REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2() -> ChatTemplate:
    path = _test_model_path()
    if not path.is_file():
        pytest.skip(f"test model not found at {path} (set SMOLRT_TEST_MODEL)")
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields["tokenizer.chat_template"]
    return ChatTemplate(
        field.contents(), bos_token="<|im_start|>", eos_token="<|im_end|>"
    )


# --- the real SmolLM2 template ---------------------------------------------


def test_smollm2_single_user_message_gets_default_system_prompt(smollm2):
    rendered = smollm2.render([{"role": "user", "content": "What is 2+2?"}])
    assert rendered == (
        DEFAULT_SYSTEM
        + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        + "<|im_start|>assistant\n"
    )


def test_smollm2_explicit_system_replaces_default(smollm2):
    rendered = smollm2.render(
        [
            {"role": "system", "content": "Answer tersely."},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert rendered == (
        "<|im_start|>system\nAnswer tersely.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_smollm2_multi_turn(smollm2):
    rendered = smollm2.render(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a joke."},
        ]
    )
    assert rendered == (
        DEFAULT_SYSTEM
        + "<|im_start|>user\nHi<|im_end|>\n"
        + "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
        + "<|im_start|>user\nTell me a joke.<|im_end|>\n"
        + "<|im_start|>assistant\n"
    )


def test_smollm2_without_generation_prompt(smollm2):
    rendered = smollm2.render(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ],
        add_generation_prompt=False,
    )
    assert rendered == (
        DEFAULT_SYSTEM
        + "<|im_start|>user\nHi<|im_end|>\n"
        + "<|im_start|>assistant\nHello<|im_end|>\n"
    )


def test_smollm2_null_content_is_a_render_error(smollm2):
    # The template concatenates content with '+', which fails on None; that
    # must surface as the caller's error, not a crash.
    with pytest.raises(InvalidRequestError):
        smollm2.render([{"role": "user", "content": None}])


# --- environment behaviour, on synthetic templates --------------------------

USER = [{"role": "user", "content": "hi"}]


def test_trim_and_lstrip_blocks():
    source = (
        "{% for m in messages %}\n"
        "  {% if m['role'] == 'user' %}\n"
        "U:{{ m['content'] }}\n"
        "  {% endif %}\n"
        "{% endfor %}\n"
    )
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert ChatTemplate(source).render(messages) == "U:a\nU:c\n"


def test_loop_controls_extension():
    source = "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}"
    messages = [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]
    assert ChatTemplate(source).render(messages) == "x"


def test_tojson_keeps_non_ascii_and_key_order():
    tools = [{"name": "météo", "parameters": {"z": 1, "a": {"b": "<&>"}}}]
    rendered = ChatTemplate("{{ tools | tojson }}").render(USER, tools=tools)
    assert rendered == '[{"name": "météo", "parameters": {"z": 1, "a": {"b": "<&>"}}}]'


def test_tojson_indent():
    rendered = ChatTemplate("{{ tools[0] | tojson(indent=2) }}").render(
        USER, tools=[{"k": [1, {"n": None}]}]
    )
    assert rendered == '{\n  "k": [\n    1,\n    {\n      "n": null\n    }\n  ]\n}'


def test_tools_default_to_none():
    source = "{% if tools is none %}no tools{% else %}tools{% endif %}"
    assert ChatTemplate(source).render(USER) == "no tools"


def test_special_tokens_and_generation_prompt_in_context():
    source = "{{ bos_token }}{{ messages[0]['content'] }}{{ eos_token }}{% if add_generation_prompt %}>{% endif %}"
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    assert template.render(USER) == "<s>hi</s>>"
    assert template.render(USER, add_generation_prompt=False) == "<s>hi</s>"


def test_extra_kwargs_reach_template():
    source = (
        "{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}"
        "{{ messages[0].content }}"
    )
    template = ChatTemplate(source)
    assert template.render(USER, enable_thinking=False) == "/no_thinkhi"
    assert template.render(USER, enable_thinking=True) == "hi"
    assert template.render(USER) == "hi"


def test_reasoning_content_passes_through():
    source = (
        "{% for m in messages %}{{ m.reasoning_content }}|{{ m.content }}{% endfor %}"
    )
    messages = [{"role": "assistant", "content": "42", "reasoning_content": "6*7"}]
    assert ChatTemplate(source).render(messages) == "6*7|42"


def test_strftime_now():
    before = datetime.now().strftime("%Y-%m-%d")
    rendered = ChatTemplate("{{ strftime_now('%Y-%m-%d') }}").render(USER)
    after = datetime.now().strftime("%Y-%m-%d")
    assert rendered in (before, after)


def test_raise_exception_becomes_invalid_request():
    source = "{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}"
    with pytest.raises(InvalidRequestError, match="system first"):
        ChatTemplate(source).render(USER)


def test_undefined_attribute_is_invalid_request():
    with pytest.raises(InvalidRequestError, match="UndefinedError"):
        ChatTemplate("{{ messages[0].missing.deeper }}").render(USER)


def test_syntax_error_is_model_load_error():
    with pytest.raises(ModelLoadError, match="does not compile"):
        ChatTemplate("{% for m in messages %}{{ m }}")


def test_sandbox_blocks_python_internals():
    source = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InvalidRequestError, match="unsafe"):
        ChatTemplate(source).render(USER)


def test_sandbox_is_immutable():
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(InvalidRequestError, match="unsafe"):
        ChatTemplate("{% set _ = messages.append(1) %}").render(messages)
    with pytest.raises(InvalidRequestError, match="unsafe"):
        ChatTemplate("{% set _ = messages[0].update({'role': 'x'}) %}").render(messages)
    assert messages == [{"role": "user", "content": "hi"}]


# --- message validation -----------------------------------------------------


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ("hello", "must be a list"),
        ({"role": "user", "content": "x"}, "must be a list"),
        ([USER[0], "hello"], r"messages\[1\] must be an object"),
        ([{"content": "x"}], r"messages\[0\]\.role must be a string"),
        ([{"role": 3, "content": "x"}], r"messages\[0\]\.role must be a string"),
        ([USER[0], USER[0], {"role": "user"}], r"messages\[2\] has no 'content'"),
        (
            [{"role": "user", "content": ["x"]}],
            r"messages\[0\]\.content must be a string or null",
        ),
    ],
)
def test_bad_messages_rejected(messages, fragment):
    with pytest.raises(InvalidRequestError, match=fragment):
        ChatTemplate("{{ messages }}").render(messages)


def test_null_content_allowed_by_validation():
    source = "{% for m in messages %}{{ m.role }}={{ m.content is none }}{% endfor %}"
    messages = [{"role": "assistant", "content": None, "tool_calls": []}]
    assert ChatTemplate(source).render(messages) == "assistant=True"
