from __future__ import annotations

import os
from pathlib import Path

import pytest


def default_model_path() -> Path | None:
    env = os.environ.get("SMOLRT_TEST_MODEL")
    if env:
        return Path(env) if Path(env).is_file() else None
    try:
        from smolrt.models import find_default_model
    except ImportError:
        return None
    return find_default_model()


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = default_model_path()
    if path is None:
        pytest.skip("the default model is not installed (run `make model` or set SMOLRT_TEST_MODEL)")
    return path


@pytest.fixture(scope="session")
def engine(model_path: Path):
    from smolrt import Engine

    eng = Engine.load(model_path)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def server(engine):
    """A real server (gRPC and HTTP on ephemeral loopback ports) on the shared engine, one per module."""
    from fixtures.grpc_server import ServerThread

    srv = ServerThread(engine)
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    """An HTTP client for `server`'s HTTP door."""
    import httpx

    with httpx.Client(base_url=server.http_url, timeout=60) as client:
        yield client
