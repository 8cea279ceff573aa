"""The `supply` step: a credential no API can create waits for an operator's value.

The value goes into the staging store from the client side (keyturn.operations.supply);
only its fingerprint reaches the workflow.
"""

from __future__ import annotations

import pytest
from temporalio.service import RPCError
from test_workflow_protocol import HEADER, start
from workflow_env import eventually, harness

from keyturn.fingerprint import fingerprint
from keyturn.operations.errors import RunError
from keyturn.operations.runs import cancel as cancel_run
from keyturn.operations.supply import supply
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.tier import credential_workflow_id

RUNBOOK = HEADER + """    - id: tier2
      credentials:
        - id: ci-pat
          provider: memory.supplied
          target: {account: ci-pat}
          deliver: [{store: vault, path: app/ci-pat}]
"""


async def waiting_for_supply(h, run_id: str, credential: str):
    handle = h.client.get_workflow_handle(credential_workflow_id(run_id, credential))

    async def check():
        try:
            status = await handle.query(CredentialRotationWorkflow.status)
        except RPCError:  # the child has not started yet
            return None
        last = status.steps[-1] if status.steps else None
        return last and (last.step, last.outcome) == ("supply", "waiting")

    await eventually(check)


def seeded(h) -> str:
    old_id, old_secret = h.supplied.seed("ci-pat")
    h.store.write("app/ci-pat", old_secret, {"credential_id": old_id})
    return old_id


async def test_supplied_value_is_verified_then_the_old_credential_revoked(tmp_path):
    async with harness(tmp_path) as h:
        old_id = seeded(h)
        plan, handle = await start(h, RUNBOOK)
        await waiting_for_supply(h, plan.run_id, "ci-pat")
        new_secret = h.supplied.mint("ci-pat")

        notice = await supply(h.client, plan.run_id, "ci-pat", new_secret, "alice",
                              store_for=lambda _: h.store)

        assert notice.fingerprint == fingerprint(new_secret)
        assert (await handle.result()).state == "succeeded"
        assert old_id not in h.supplied.keys["ci-pat"]
        assert h.store.read("app/ci-pat").secret == new_secret
        supplied = [r for r in h.records(plan.run_id) if r.step == "supply"]
        assert [(r.outcome, r.actor) for r in supplied] == [("succeeded", "alice")]
        assert supplied[0].details["fingerprint"] == notice.fingerprint
        create = next(r for r in h.records(plan.run_id) if r.step == "create")
        assert create.details["generated_by"] == "supplied by alice"
        history = await h.client.get_workflow_handle(
            credential_workflow_id(plan.run_id, "ci-pat")).fetch_history()
        assert new_secret["token"].encode() not in history.to_json().encode()


async def test_a_value_that_is_no_credential_fails_and_keeps_the_old_one(tmp_path):
    async with harness(tmp_path) as h:
        old_id = seeded(h)
        plan, handle = await start(h, RUNBOOK)
        await waiting_for_supply(h, plan.run_id, "ci-pat")

        await supply(h.client, plan.run_id, "ci-pat", {"token": "tok-typo"}, "alice",
                     store_for=lambda _: h.store)

        status = await handle.result()
        assert status.state == "failed"
        assert list(h.supplied.keys["ci-pat"]) == [old_id]
        assert h.store.read("app/ci-pat").metadata == {"credential_id": old_id}
        assert not [p for p in h.store.paths if p.startswith("keyturn/staging/")]


async def test_supply_is_refused_when_nothing_waits_for_it(tmp_path):
    async with harness(tmp_path) as h:
        h.provider.seed("plain")
        h.store.write("app/plain", {"key_id": "x"}, {})
        plan, _ = await start(h, RUNBOOK.replace("memory.supplied", "memory.key")
                                   .replace("ci-pat", "plain"))
        with pytest.raises(RunError, match="created by its provider"):
            await supply(h.client, plan.run_id, "plain", {"token": "t"}, "alice",
                         store_for=lambda _: h.store)
        with pytest.raises(RunError, match="no credential 'nope'"):
            await supply(h.client, plan.run_id, "nope", {"token": "t"}, "alice",
                         store_for=lambda _: h.store)
        await cancel_run(h.client, plan.run_id, "erin")
