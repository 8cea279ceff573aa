"""The PostgreSQL audit backend going away mid-run: the worker's audit DSN goes through a
TcpProxy whose `down()` cuts every open connection and refuses new ones (what clients see
while the server restarts). The rotations wait on the audit log, `keyturn status` says so,
and once the database is back the run completes: every step recorded once, one new key per
user, `audit verify --dsn` and `replay` pass."""

from __future__ import annotations

import uuid

from fakes.tcp_proxy import TcpProxy
from killing import report
from stack_support import seed_user, sts_accepts
from test_audit_damage import RUNBOOK, _waiting_on_audit

from keyturn.audit.postgres import PostgresAuditLog


def test_postgres_audit_backend_away_mid_run(stack, audit_database, iam_client, vault_client,
                                             moto):
    tag = uuid.uuid4().hex[:6]
    old = {u: seed_user(iam_client, vault_client, f"{u}-{tag}", f"damage-{tag}/{u}")
           for u in ("u1", "u2")}
    server = audit_database.server
    proxy = TcpProxy(server.port).start()
    try:
        dsn = server.dsn(audit_database.owner, audit_database.password,
                         dbname=audit_database.name, port=proxy.port)
        stack.env["KEYTURN_AUDIT_DSN"] = dsn
        direct = PostgresAuditLog(audit_database.dsn)
        path = stack.tmp / "pg.yaml"
        path.write_text(RUNBOOK.format(tag=tag))
        stack.start_worker()
        run_id = stack.cli_json("run", str(path), "--as", "dave")["run_id"]

        def records():
            return list(direct.records_for_run(run_id)) if direct.exists() else []

        stack.wait_for(lambda: any(r.step == "create" for r in records()), what="a create")
        with proxy.down():
            why = stack.wait_for(lambda: _waiting_on_audit(stack, run_id),
                                 what="a rotation waiting on the audit database")
        waited = stack.cli("wait", run_id)
        assert waited.returncode == 0, waited.stdout + waited.stderr

        for user in ("u1", "u2"):
            keys = iam_client.list_access_keys(UserName=f"{user}-{tag}")["AccessKeyMetadata"]
            assert len(keys) == 1 and not sts_accepts(moto, old[user])
        done = [(r.credential, r.step, r.details.get("phase")) for r in records()
                if r.outcome == "succeeded" and r.credential]
        assert len(done) == len(set(done)) == 14, done
        assert len({r.event_id for r in records()}) == len(records())
        assert stack.cli("audit", "verify", "--dsn", audit_database.dsn).returncode == 0
        replayed = stack.cli("audit", "replay", run_id, "--dsn", audit_database.dsn)
        assert replayed.returncode == 0, replayed.stdout
        direct.close()
    finally:
        proxy.stop()
    report({"drill": "audit db away", "injected": "PostgreSQL audit connections cut",
            "checked": f"waited ({why[:30]}…), once", "ok": True, "seconds": 0})
