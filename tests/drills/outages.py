"""Servers going away for the drills: a stack whose OpenBao and AWS emulator are reached
through TcpProxy (tests/fakes/tcp_proxy.py, whose `down()` cuts every connection and
refuses new ones) and whose Temporal dev server is the drill's own, so it can be SIGKILLed
and restarted on its port and SQLite file; and the conditions the drills wait on."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from types import SimpleNamespace

from fakes.tcp_proxy import TcpProxy
from killing import audit_records
from stack_support import make_stack

from keyturn.codec import new_key
from keyturn.devstack.servers import TemporalDevServer


@contextmanager
def outage_stack(tmp_path, openbao, moto):
    """(stack, temporal server, vault proxy, moto proxy); all stopped at the end."""
    temporal = TemporalDevServer(tmp_path / "temporal").start()
    vault = TcpProxy(openbao.port).start()
    aws = TcpProxy(moto.port).start()
    shim_bao = SimpleNamespace(url=vault.url, root_token=openbao.root_token)
    shim_moto = SimpleNamespace(url=aws.url, admin_credentials=moto.admin_credentials)
    stack = make_stack(tmp_path, temporal, shim_bao, shim_moto, new_key())
    try:
        yield stack, temporal, vault, aws
    finally:
        stack.stop()
        aws.stop()
        vault.stop()
        temporal.stop()


def restart_killed(server: TemporalDevServer) -> None:
    """SIGKILL the Temporal dev server and start it again on the same ports and database."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.process = None
    server.start()


def errors(stack, run_id: str) -> list[dict]:
    """The run's `error` records: failed attempts recorded as retried."""
    return [r for r in audit_records(stack, run_id) if r["outcome"] == "error"]


def has_record(stack, run_id: str, step: str, outcome: str = "succeeded") -> bool:
    return any(r["step"] == step and r["outcome"] == outcome
               for r in audit_records(stack, run_id))


@contextmanager
def down_until_retried(stack, run_id: str, proxy: TcpProxy, what: str, timeout: float = 60):
    """Keep `proxy`'s server away until the run has recorded one more retried error."""
    before = len(errors(stack, run_id))
    with proxy.down():
        stack.wait_for(lambda: len(errors(stack, run_id)) > before, timeout=timeout,
                       what=f"a retried error while {what} is down")
        yield
