"""Secret locations: where a secret sits, as the catalog and the report write it.

    github:repos/OWNER/REPO/NAME                       a repository's Actions secret
    github:repos/OWNER/REPO/environments/ENV/NAME      an environment's (ENV may hold '/')
    github:orgs/ORG/NAME                               an organization's
    k8s:NAMESPACE/SECRET/KEY                           one key of a Kubernetes Secret
    k8s:NAMESPACE/SECRET                               every key of it

GitHub compares owners, repositories, organizations and environments without
case and keeps secret names upper-case, so the canonical form does too.
Kubernetes names are case-sensitive and kept as written.
"""

from __future__ import annotations

import re

from keyturn.errors import PermanentError

GITHUB_SECRET = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_K8S_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_GH_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class LocationError(PermanentError, ValueError):
    """A string that is not a secret location; the message shows the forms."""


def canonical(text: str) -> str:
    """The canonical form of a location string; LocationError if it is none."""
    scheme, sep, rest = text.partition(":")
    parts = rest.split("/")
    if sep and scheme == "github":
        if parts[0] == "orgs" and len(parts) == 3 and _gh(parts[1]) and _secret(parts[2]):
            return f"github:orgs/{parts[1].lower()}/{parts[2].upper()}"
        if parts[0] == "repos" and len(parts) >= 4 and _gh(parts[1]) and _gh(parts[2]):
            base = f"github:repos/{parts[1].lower()}/{parts[2].lower()}"
            if len(parts) == 4 and _secret(parts[3]):
                return f"{base}/{parts[3].upper()}"
            if parts[3] == "environments" and len(parts) >= 6 and all(parts[4:-1]) and _secret(
                    parts[-1]):
                return f"{base}/environments/{'/'.join(parts[4:-1]).lower()}/{parts[-1].upper()}"
    if sep and scheme == "k8s" and len(parts) in (2, 3) and _K8S_NAME.fullmatch(parts[0]) and (
            _K8S_NAME.fullmatch(parts[1])) and (len(parts) == 2 or _K8S_KEY.fullmatch(parts[2])):
        return text
    raise LocationError(
        f"{text!r} is not a secret location; write github:repos/OWNER/REPO/NAME, "
        "github:repos/OWNER/REPO/environments/ENV/NAME, github:orgs/ORG/NAME, "
        "k8s:NAMESPACE/SECRET/KEY or k8s:NAMESPACE/SECRET"
    )


def covers(catalog_location: str, exposed: str) -> bool:
    """Whether a catalog location holds (part of) an exposed one; both canonical.

    A whole Kubernetes Secret covers each of its keys, and an exposed whole
    Secret (envFrom, a volume) exposes every key the catalog lists for it.
    """
    if catalog_location == exposed:
        return True
    if not (catalog_location.startswith("k8s:") and exposed.startswith("k8s:")):
        return False
    a, b = catalog_location.split("/"), exposed.split("/")
    return a[:2] == b[:2] and (len(a) == 2 or len(b) == 2)


def github_repo(full_name: str, name: str, environment: str | None = None) -> str:
    owner, repo = full_name.split("/", 1)
    text = f"github:repos/{owner}/{repo}/" + (
        f"environments/{environment}/{name}" if environment else name)
    return canonical(text)


def github_org(org: str, name: str) -> str:
    return canonical(f"github:orgs/{org}/{name}")


def _gh(part: str) -> bool:
    return bool(_GH_NAME.fullmatch(part))


def _secret(part: str) -> bool:
    return bool(GITHUB_SECRET.fullmatch(part))
