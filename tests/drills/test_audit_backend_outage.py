"""The PostgreSQL audit backend going away mid-run: the worker's audit DSN goes through a
TcpProxy whose `down()` cuts every open connection and refuses new ones (what clients see
while the server restarts). The rotations wait on the audit log, `keyturn status` says so,
and once the database is back the run completes: every step recorded once, one new key per
user, `audit verify --dsn` and `replay` pass."""

from __future__ import annotations

import time

from fakes.tcp_proxy import TcpProxy
from killing import report
from test_audit_damage import _waiting_on_audit
from two_keys import check_two_keys, two_keys

from keyturn.audit.postgres import PostgresAuditLog


def test_postgres_audit_backend_away_mid_run(stack, audit_database, iam_client, vault_client,
                                             moto):
    began = time.monotonic()
    keys = two_keys(iam_client, vault_client, stack.tmp, "audit-db")
    server = audit_database.server
    proxy = TcpProxy(server.port).start()
    try:
        dsn = server.dsn(audit_database.owner, audit_database.password,
                         dbname=audit_database.name, port=proxy.port)
        stack.env["KEYTURN_AUDIT_DSN"] = dsn
        direct = PostgresAuditLog(audit_database.dsn)
        stack.start_worker()
        run_id = stack.cli_json("run", str(keys.path), "--as", "dave")["run_id"]

        def records():
            return list(direct.records_for_run(run_id)) if direct.exists() else []

        stack.wait_for(lambda: any(r.step == "create" for r in records()), what="a create")
        with proxy.down():
            why = stack.wait_for(lambda: _waiting_on_audit(stack, run_id),
                                 what="a rotation waiting on the audit database")
        waited = stack.cli("wait", run_id)
        assert waited.returncode == 0, waited.stdout + waited.stderr

        assert not check_two_keys(keys, iam_client, vault_client, moto,
                                  [r.model_dump() for r in records()])
        assert stack.cli("audit", "verify", "--dsn", audit_database.dsn).returncode == 0
        replayed = stack.cli("audit", "replay", run_id, "--dsn", audit_database.dsn)
        assert replayed.returncode == 0, replayed.stdout
        direct.close()
    finally:
        proxy.stop()
    report({"drill": "audit db away", "injected": "PostgreSQL audit connections cut",
            "checked": f"waited ({why[:30]}…), once", "ok": True,
            "seconds": round(time.monotonic() - began, 1)})
