"""Chat templates: turn a list of messages into the prompt text a model expects.

GGUF files carry the Jinja template from the model's Hugging Face tokenizer
config, and those templates are written against the environment that
`transformers.apply_chat_template` sets up. We reproduce that environment
(same Jinja options, same `tojson`, `raise_exception` and `strftime_now`) so a
template renders here exactly as it does there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.sandbox

from smolrt.errors import InvalidRequestError, ModelLoadError, SmolrtError


def _raise_exception(message: str) -> None:
    # Templates call this to reject conversations they cannot express (for
    # example a role they do not know); that is the caller's mistake.
    raise InvalidRequestError(f"chat template rejected the messages: {message}")


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Jinja's own tojson HTML-escapes '<', '>', '&' and '\'' and sorts keys;
    # templates (tool schemas especially) expect plain json.dumps output.
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    # The template comes from a model file, i.e. from whoever published the
    # model: sandboxed so it cannot reach Python internals, immutable so it
    # cannot alter the caller's messages.
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def _check_messages(messages: Any) -> list[Any]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InvalidRequestError("messages must be a list of message objects")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{index}] must be an object with 'role' and 'content'"
            )
        role = message.get("role")
        if not isinstance(role, str):
            raise InvalidRequestError(f"messages[{index}].role must be a string")
        if "content" not in message:
            raise InvalidRequestError(f"messages[{index}] has no 'content'")
        content = message["content"]
        if content is not None and not isinstance(content, str):
            raise InvalidRequestError(
                f"messages[{index}].content must be a string or null"
            )
    return list(messages)


class ChatTemplate:
    """A compiled chat template.

    `bos_token` and `eos_token` are exposed to the template under those names,
    as transformers does with the tokenizer's special tokens.
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = ""):
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        try:
            self._template = _environment().from_string(source)
        except jinja2.TemplateError as exc:
            raise ModelLoadError(f"chat template does not compile: {exc}") from exc

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Render `messages` to prompt text.

        `tools` are JSON-schema tool descriptions, passed as given. Extra
        keyword arguments (`enable_thinking`, `documents`, ...) become template
        variables; like transformers, they may override the special tokens.
        """
        context: dict[str, Any] = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **extra,
            "messages": _check_messages(messages),
            "tools": tools,
            "add_generation_prompt": add_generation_prompt,
        }
        try:
            return self._template.render(context)
        except SmolrtError:
            raise
        except Exception as exc:
            # Whatever fails while evaluating a template (undefined variables,
            # sandbox refusals, `None + str` on a null content, ...) is this
            # template being unable to express this request.
            raise InvalidRequestError(
                f"chat template failed to render: {type(exc).__name__}: {exc}"
            ) from exc


__all__ = ["ChatTemplate"]
