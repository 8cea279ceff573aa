"""The CLI's client for keyturn's HTTP API (/v1), used when KEYTURN_API_URL and KEYTURN_TOKEN
are both set: the API, not the caller, then decides who is acting (from the token).

Every refusal becomes an `ApiRequestError` carrying the API's stable `code` and its message; a
missing token (401) or role (403) says which token and which role.
"""

from __future__ import annotations

import os
from typing import Any, Self
from urllib.parse import quote

import httpx

from keyturn.errors import KeyturnError
from keyturn.operations.runs import RunSnapshot
from keyturn.workflows.models import CredentialStatus, RunStatus

URL_ENV = "KEYTURN_API_URL"
TOKEN_ENV = "KEYTURN_TOKEN"
TIMEOUT_SECONDS = 60.0

ROLE_OF = {
    "start a run": "operator",
    "cancel a run": "operator",
    "supply a value": "operator",
    "approve a gate": "approver",
    "reject a gate": "approver",
    "read its audit records": "auditor",
}


class ApiRequestError(KeyturnError):
    """The API refused a request or could not be reached; `code` is the API's stable code."""

    def __init__(self, message: str, *, code: str, status: int | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.body = body or {}


def configured() -> bool:
    """Whether the CLI should talk to the API (both KEYTURN_API_URL and KEYTURN_TOKEN set)."""
    return bool(os.environ.get(URL_ENV)) and bool(os.environ.get(TOKEN_ENV))


def _segment(value: str) -> str:
    return quote(value, safe="")


def detail_from_api(payload: dict[str, Any]) -> RunSnapshot:
    """A RunSnapshot from GET /v1/runs/{id}: the credentials that have started, as describe()
    reports them (not-yet-started ones are only outcomes in their tier)."""
    fields = RunStatus.model_fields
    status = RunStatus.model_validate({k: v for k, v in payload.items() if k in fields})
    credentials = {}
    for item in payload.get("credentials", []):
        cs = CredentialStatus.model_validate(item)
        if cs.steps or cs.state not in ("pending", "skipped"):
            credentials[cs.credential] = cs
    return RunSnapshot(status=status, credentials=credentials)


class ApiClient:
    """A thin synchronous client: one method per /v1 route, JSON in and out."""

    def __init__(self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    @classmethod
    def from_env(cls) -> ApiClient:
        return cls(os.environ[URL_ENV], os.environ[TOKEN_ENV])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- routes ---------------------------------------------------------------------

    def whoami(self) -> dict:
        return self._call("GET", "/v1/whoami", doing="identify yourself")

    def start_run(self, runbook_yaml: str, *, skip_preflight: bool = False,
                  on_locked: str | None = None) -> dict:
        body: dict = {"runbook_yaml": runbook_yaml, "skip_preflight": skip_preflight}
        if on_locked is not None:
            body["on_locked"] = on_locked
        return self._call("POST", "/v1/runs", json=body, doing="start a run")

    def preflight(self, runbook_yaml: str) -> dict:
        return self._call("POST", "/v1/preflight", json={"runbook_yaml": runbook_yaml},
                          doing="run preflight")

    def list_runs(self, *, state: str | None = None, incident: str | None = None,
                  limit: int | None = None) -> dict:
        """{"runs": recent runs, "locks": the targets held now}."""
        params = {k: v for k, v in {"state": state, "incident": incident, "limit": limit}.items()
                  if v is not None}
        return self._call("GET", "/v1/runs", params=params, doing="list runs")

    def run(self, run_id: str) -> dict:
        return self._call("GET", f"/v1/runs/{_segment(run_id)}", doing="read a run")

    def detail(self, run_id: str) -> RunSnapshot:
        """The run as `keyturn.operations.runs.describe` gives it, so the CLI renders both paths alike."""
        return detail_from_api(self.run(run_id))

    def decide(self, run_id: str, target: str, reason: str, *, approve: bool,
               kind: str | None = None) -> dict:
        verb = "approve" if approve else "reject"
        body = {"reason": reason, **({"kind": kind} if kind else {})}
        return self._call(
            "POST", f"/v1/runs/{_segment(run_id)}/gates/{_segment(target)}/{verb}",
            json=body, doing=f"{verb} a gate",
        )

    def cancel(self, run_id: str, reason: str = "") -> dict:
        return self._call("POST", f"/v1/runs/{_segment(run_id)}/cancel", json={"reason": reason},
                          doing="cancel a run")

    def supply(self, run_id: str, credential: str, value: str, field: str | None = None) -> dict:
        body: dict[str, Any] = {"value": value}
        if field:
            body["field"] = field
        return self._call(
            "POST", f"/v1/runs/{_segment(run_id)}/credentials/{_segment(credential)}/supply",
            json=body, doing="supply a value",
        )

    def audit(self, run_id: str) -> list[dict]:
        return self._call("GET", f"/v1/runs/{_segment(run_id)}/audit",
                          doing="read its audit records")["records"]

    # ---- plumbing -------------------------------------------------------------------

    def _call(self, method: str, path: str, *, doing: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiRequestError(f"cannot reach the keyturn API at {self.base_url} ({exc}); "
                           f"check {URL_ENV}", code="api_unreachable") from exc
        if response.is_success:
            return response.json() if response.content else {}
        raise self._error(response, doing)

    def _error(self, response: httpx.Response, doing: str) -> ApiRequestError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            text = response.text.strip()[:200] or response.reason_phrase
            return ApiRequestError(f"the API at {self.base_url} answered HTTP {response.status_code} "
                            f"to {response.request.method} {response.request.url.path}: {text}",
                            code="http_error", status=response.status_code)
        code = str(body["code"])
        message = str(body.get("message") or code)
        if response.status_code == 401:
            message = (f"the API refused the token in {TOKEN_ENV} ({message}); "
                       f"ask an administrator for a valid one (`keyturn api token add`)")
        elif response.status_code == 403 and code == "forbidden":
            role = ROLE_OF.get(doing)
            needs = f"role {role!r}" if role else "another role"
            message = (f"the principal of {TOKEN_ENV} may not {doing}: it needs {needs} "
                       f"({message})")
        elif code == "invalid_runbook" and body.get("line"):
            where = ":".join(str(body[k]) for k in ("file", "line", "column") if body.get(k))
            message = message if message.startswith(where) else f"{where}: {message}"
        return ApiRequestError(f"{message} [{code}]", code=code, status=response.status_code, body=body)
