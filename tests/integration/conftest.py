"""Fixtures of the end-to-end tests: the environment of a CLI user on the real servers.

    stack           a Stack (stack_support) over the session's Temporal dev server,
                    OpenBao and moto, with a fresh codec key and task queue; its
                    workers are stopped at the end
    worker_stack    the same with one worker process already started
"""

from __future__ import annotations

import pytest
from stack_support import make_stack

from keyturn.codec import new_key


@pytest.fixture
def stack(tmp_path, temporal_dev_server, openbao, moto):
    s = make_stack(tmp_path, temporal_dev_server, openbao, moto, new_key())
    yield s
    s.stop()


@pytest.fixture
def worker_stack(stack):
    stack.start_worker()
    return stack
