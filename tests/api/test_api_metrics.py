"""/metrics on the API: requests counted by route template and status, no token needed, and
(the worker of these tests runs in the same process) a gate's open age and wait."""

from __future__ import annotations

import uuid

from api_support import memory_credential, runbook_yaml
from prometheus_client.parser import text_string_to_metric_families
from workflow_env import eventually


def samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list, name: str, **labels: str) -> float:
    return sum(s.value for s in found
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def scrape(api_stack) -> list:
    response = await api_stack.get("/metrics", None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_requests_are_counted_by_route_template_and_status(api_stack):
    run_id = f"no-such-run-{uuid.uuid4().hex[:8]}"
    before = await scrape(api_stack)
    assert (await api_stack.get(f"/v1/runs/{run_id}", "dave")).status_code == 404
    assert (await api_stack.get(f"/v1/runs/{run_id}", None)).status_code == 401
    assert (await api_stack.get("/healthz", None)).status_code == 200
    after = await scrape(api_stack)

    route = "/v1/runs/{run_id}"
    for status in ("404", "401"):
        moved = (value(after, "keyturn_api_requests_total", route=route, status=status)
                 - value(before, "keyturn_api_requests_total", route=route, status=status))
        assert moved == 1, status
    assert value(after, "keyturn_api_requests_total", route="/healthz", method="GET") >= 1
    assert value(after, "keyturn_api_request_duration_seconds_count", route=route) >= 2
    assert not any(run_id in v for s in after for v in s.labels.values())


async def test_an_open_gate_shows_its_age_and_its_wait_is_observed_once_decided(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    gate = "{before: promote, approvals: 1, from: security, timeout: 1h}"
    text = runbook_yaml("    - id: metrics-tier\n      credentials:\n"
                        + memory_credential(account, extra=f"          gate: {gate}\n"))
    run_id = await api_stack.start(text)
    await api_stack.open_gate(run_id, account)

    async def gate_counted() -> list | None:  # the gate's opened record may still be on its way
        found = await scrape(api_stack)
        return found if value(found, "keyturn_gates_open", tier="metrics-tier") == 1 else None

    opened = await eventually(gate_counted)
    waited_before = value(opened, "keyturn_gate_wait_seconds_count", tier="metrics-tier",
                          outcome="passed")
    ratio = value(opened, "keyturn_gate_open_timeout_ratio_max", tier="metrics-tier")
    assert 0 < ratio < 0.5
    assert value(opened, "keyturn_gate_open_age_max_seconds", tier="metrics-tier") < 3600

    approved = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "bob")
    assert approved.status_code == 200, approved.text
    assert (await api_stack.ended(run_id))["state"] == "succeeded"
    done = await scrape(api_stack)
    assert value(done, "keyturn_gates_open", tier="metrics-tier") == 0
    assert value(done, "keyturn_gate_wait_seconds_count", tier="metrics-tier",
                 outcome="passed") == waited_before + 1
    assert value(done, "keyturn_rotations_total", provider="memory.key", tier="metrics-tier",
                 outcome="succeeded") >= 1
    labels = {v for s in done for v in s.labels.values()}
    assert account not in labels and run_id not in labels
