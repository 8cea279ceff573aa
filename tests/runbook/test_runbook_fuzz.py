"""Hostile runbooks: whatever the bytes, loading, validating and planning ends in a plan or in
one RunbookError naming file, line and column; never another exception, never a hang.

Documents are the demo runbook with random edits (a value replaced by another YAML value,
a key dropped or renamed, text inserted or cut at a random place), so most of them get far
into validation rather than failing at the first byte.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyturn.policy.model import Policy
from keyturn.runbook import RunbookError, loads, plan, validate

DEMO = (Path(__file__).resolve().parents[2] / "runbooks" / "demo.yaml").read_text()
ENVIRON = {"VAULT_ADDR": "http://127.0.0.1:8200"}
PROVIDERS = ["aws.iam_access_key", "aws.kms_key", "signing.vault_pki_cert"]

SCALARS = st.one_of(
    st.integers(-5, 10**6).map(str), st.sampled_from(
        ["", "~", "[]", "{}", "[/]", ":ab:", "&a x", "*a", "!!binary x", "true", "'", '"',
         "- x", "{a: [b", "\u202e", "${NOPE}", "$${x}", "1h", "0s", "-1", "1e309", "<<: *a"]),
    st.text(max_size=12),
)


@st.composite
def edited(draw) -> str:
    lines = DEMO.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        kind = draw(st.sampled_from(["value", "drop", "rename", "insert", "cut"]))
        if kind == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[i] = f"{key}: {draw(SCALARS)}"
        elif kind == "drop":
            del lines[i]
        elif kind == "rename" and ":" in line:
            key, rest = line.split(":", 1)
            lines[i] = f"{key.rstrip()}{draw(st.sampled_from(['x', '_', 's', '']))}:{rest}"
        elif kind == "insert":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(SCALARS) + line[at:]
        elif kind == "cut":
            lines = lines[:i]
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def outcome(text: str) -> str:
    """'planned' or 'refused'; any other exception fails the test."""
    try:
        runbook = validate(loads(text, "fuzz.yaml", ENVIRON), PROVIDERS, Policy.default())
        plan(runbook, run_id="run-1", requested_by="dave", source_sha256="ab" * 32)
    except RunbookError as exc:
        assert exc.file == "fuzz.yaml" and exc.line >= 1 and exc.column >= 1, exc
        assert str(exc).startswith(f"fuzz.yaml:{exc.line}:{exc.column}: ")
        return "refused"
    return "planned"


def test_the_unedited_demo_plans() -> None:
    assert outcome(DEMO) == "planned"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited())
def test_an_edited_runbook_plans_or_is_refused_at_a_place(text: str) -> None:
    outcome(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_at_a_place(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # the loader's decode step names the byte; tested in test_runbook_loader
    outcome(text)
