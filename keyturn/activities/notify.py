"""The `notify` activity: POST one notification to one webhook as Slack-compatible JSON.

The body is {"text": a one-line summary, "blocks": [one mrkdwn section]}; the
section links to the run's approvals page, `<KEYTURN_UI_URL>/runs/<run id>`,
when the worker has KEYTURN_UI_URL set (without it there is no link). A target
given by `url_env` is read from the worker's environment at delivery time, so
the URL (a secret for Slack) never travels through workflow history; it never
appears in an error or a log line either.

A failed delivery raises an ApplicationError: retryable for network errors,
5xx, 408, 425 and 429, so Temporal retries it on the workflow's notify policy;
non-retryable when retrying cannot help (other 4xx, a missing variable, a URL
that is not https). The workflow then records the failure in the audit log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from keyturn.errors import KeyturnError
from keyturn.runbook.models import webhook_url_problem
from keyturn.workflows.models import Notification, NotifyInput

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RETRYABLE_STATUS = frozenset({408, 425, 429})
UI_URL_ENV = "KEYTURN_UI_URL"

_EFFECT = {
    "tier": "start the tier",
    "create": "create the replacement credential",
    "promote": "promote the new value to every deliver target",
    "revoke": "revoke the old credential",
}


class NotifyFailed(KeyturnError):
    """A delivery failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@activity.defn(name="notify")
async def notify(inp: NotifyInput) -> None:
    """Deliver `inp.notification` to target number `inp.index`."""
    n = inp.notification
    try:
        await deliver(inp, os.environ)
    except NotifyFailed as exc:
        activity.logger.warning("notification %s of run %s, target %d: %s",
                                n.event, n.run_id, inp.index, exc)
        raise ApplicationError(str(exc), type="NotifyFailed",
                               non_retryable=not exc.retryable) from None


async def deliver(inp: NotifyInput, env: Mapping[str, str]) -> None:
    """POST the notification; raise NotifyFailed naming the target, never its URL."""
    url = target_url(inp, env)
    payload = message(inp.notification, env.get(UI_URL_ENV))
    where = f"webhook target {inp.index}"
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.post(url, json=payload, headers={"user-agent": "keyturn"})
    except httpx.HTTPError as exc:
        detail = _scrub(str(exc), url) or "no detail"
        raise NotifyFailed(f"{where}: {type(exc).__name__}: {detail}", retryable=True) from None
    status = response.status_code
    if status >= 300:
        retryable = status >= 500 or status in RETRYABLE_STATUS
        raise NotifyFailed(f"{where} answered HTTP {status}", retryable=retryable)


def target_url(inp: NotifyInput, env: Mapping[str, str]) -> str:
    """The target's URL: from the worker's environment for `url_env`, else from the plan."""
    target, where = inp.target, f"webhook target {inp.index}"
    if target.url_env:
        url = env.get(target.url_env, "").strip()
        if not url:
            raise NotifyFailed(f"{where}: environment variable {target.url_env} is not set "
                               "on the worker", retryable=False)
        problem = webhook_url_problem(url)
        if problem:
            raise NotifyFailed(f"{where}: the URL in {target.url_env} {problem}", retryable=False)
        return url
    if not target.url:
        raise NotifyFailed(f"{where} has no URL", retryable=False)
    return target.url


def _scrub(text: str, url: str) -> str:
    """`text` without the URL or its path (a Slack webhook's path is its secret)."""
    text = text.replace(url, "<webhook URL>")
    path = urlsplit(url).path
    return text.replace(path, "<path>") if len(path) > 1 else text


def _esc(text: str) -> str:
    """Escape text for Slack mrkdwn, so names cannot form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_link(run_id: str, ui_url: str | None) -> str | None:
    """The run's approvals page, or None without KEYTURN_UI_URL."""
    if not ui_url or not ui_url.strip():
        return None
    return f"{ui_url.strip().rstrip('/')}/runs/{quote(run_id, safe='')}"


def summary(n: Notification) -> str:
    """The one-line summary of a notification (Slack's `text`, shown in alerts)."""
    run = f"run {n.run_id}" + (f" ({n.incident})" if n.incident else "")
    if n.event == "gate_opened":
        return f"keyturn: approval needed {_gate_place(n)} in {run}: {_needs(n)}"
    if n.event == "credential_failed":
        return f"keyturn: credential {n.credential} failed in {run}: {n.detail}"
    if n.event == "tier_ended":
        return f"keyturn: tier {n.tier} {n.state} in {run}" + (f": {n.detail}" if n.detail else "")
    return f"keyturn: {run} {n.state}" + (f": {n.detail}" if n.detail else "")


def message(n: Notification, ui_url: str | None) -> dict:
    """The Slack-compatible JSON body: {"text": summary, "blocks": [a mrkdwn section]}."""
    lines = [_headline(n), f"Runbook `{_esc(n.runbook)}`, run `{_esc(n.run_id)}`"
             + (f", incident {_esc(n.incident)}" if n.incident else "")]
    if n.event == "gate_opened":
        lines.append(f"Needs {_esc(_needs(n))}")
        lines.append(f"Approving will {_EFFECT.get(n.gate or '', 'let the run go on')}")
    elif n.detail:
        lines.append(_esc(n.detail))
    link = run_link(n.run_id, ui_url)
    if link:
        label = "Review and approve" if n.event == "gate_opened" else "Open the run"
        lines.append(f"<{link}|{label}>")
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    return {"text": summary(n), "blocks": [section]}


def _gate_place(n: Notification) -> str:
    if n.gate == "tier" or n.credential is None:
        return f"before tier {n.tier} starts"
    return f"before {n.gate} of credential {n.credential}"


def _needs(n: Notification) -> str:
    plural = "approval" if n.approvals == 1 else "approvals"
    needs = f"{n.approvals} {plural} from {', '.join(n.groups)}"
    return needs + (f" (not {n.requested_by}, who started the run)" if n.distinct else "")


def _headline(n: Notification) -> str:
    if n.event == "gate_opened":
        return f"*Approval needed* {_esc(_gate_place(n))}"
    if n.event == "credential_failed":
        return f"*Credential `{_esc(n.credential or '')}` failed*"
    if n.event == "tier_ended":
        return f"*Tier `{_esc(n.tier or '')}` {_esc(n.state)}*"
    return f"*Run {_esc(n.state)}*"
