"""One scoring endpoint on 127.0.0.1 for the Serve tests (the ASAP-SAS set 1 student); tests add apps beside it."""

import socket

import pytest

from raykd.serve.config import ServeConfig
from raykd.serve.launch import run_serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def endpoint(ray_session, asap1_student):
    from ray import serve

    model_dir, _ = asap1_student
    url = run_serve(ServeConfig(model=str(model_dir), port=free_port(), poll_interval_s=0, max_responses=50,
                                max_text_chars=2000), blocking=False)
    yield url
    serve.shutdown()
