"""Text from people and providers on the approvals page is inert: escaped, and isolated in
<bdi> so a bidi override in an approval's reason cannot reorder what an approver reads."""

from __future__ import annotations

import re
import uuid

from api_support import memory_credential, runbook_yaml

GATE = "          gate: {before: promote, approvals: 2, from: security}\n"
REASON = "looks fine \u202e<b>deliver</b>"


async def test_a_reason_with_a_bidi_override_is_isolated_and_escaped(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    run_id = await api_stack.start(runbook_yaml(
        f"    - id: t1\n      credentials:\n{memory_credential(account, extra=GATE)}"))
    await api_stack.open_gate(run_id, account)
    approved = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "bob",
                                    {"reason": REASON})
    assert approved.status_code == 200, approved.text

    page = await api_stack.get(f"/ui/runs/{run_id}", "erin")
    assert page.status_code == 200
    shown = "looks fine \u202e&lt;b&gt;deliver&lt;/b&gt;"
    assert re.search(rf"<bdi>bob</bdi> \(“<bdi>{re.escape(shown)}</bdi>”\)", page.text)
    assert "<b>deliver" not in page.text
    await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")
