"""Kubernetes manifests: which containers run which image, and which Secrets each can read.

Workloads are Pod, Deployment, StatefulSet, DaemonSet, Job and CronJob (and
`kind: List` of them), in multi-document YAML. A container reads a Secret's
key through `env[].valueFrom.secretKeyRef`, the whole Secret through
`envFrom[].secretRef`, and the keys of a mounted `secret` volume (all of
them, or the listed `items`; projected volumes too). Images are matched to
SBOM subjects by digest, else by normalized reference (docker.io/library/
added to bare names, `:latest` to untagged ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyturn.scope.errors import ScopeError
from keyturn.scope.yamlish import documents

_POD_SPEC = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True)
class Container:
    file: str
    workload: str  # "Kind/namespace/name"
    name: str
    image: str
    secrets: tuple[str, ...]  # canonical k8s: locations


def parse(text: str, file: str) -> list[Container]:
    """Every container of every workload in a manifest file; ScopeError on broken YAML."""
    found: list[Container] = []
    stack = [doc for doc in documents(text, file) if doc is not None]
    while stack:
        doc = stack.pop(0)
        if not isinstance(doc, dict):
            raise ScopeError(file, "a manifest document must be a mapping")
        if doc.get("kind") == "List":
            stack.extend(doc.get("items") or [])
        elif doc.get("kind") in _POD_SPEC:
            found.extend(_containers(doc, file))
    return found


def _containers(doc: dict[str, Any], file: str) -> list[Container]:
    meta = doc.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    workload = f"{doc['kind']}/{namespace}/{meta.get('name', '?')}"
    spec: Any = doc
    for key in _POD_SPEC[doc["kind"]]:
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        raise ScopeError(file, f"{workload}: no pod spec at {'.'.join(_POD_SPEC[doc['kind']])}")
    volumes = {v.get("name"): _volume_secrets(v, namespace) for v in spec.get("volumes") or []
               if isinstance(v, dict)}
    found = []
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(group) or []:
            if not isinstance(container, dict) or not isinstance(container.get("image"), str):
                raise ScopeError(file, f"{workload}: a container without an image")
            secrets: list[str] = []
            for env in container.get("env") or []:
                ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get("name") and ref.get("key"):
                    secrets.append(f"k8s:{namespace}/{ref['name']}/{ref['key']}")
            for source in container.get("envFrom") or []:
                ref = (source or {}).get("secretRef") or {}
                if ref.get("name"):
                    secrets.append(f"k8s:{namespace}/{ref['name']}")
            for mount in container.get("volumeMounts") or []:
                secrets.extend(volumes.get((mount or {}).get("name"), ()))
            found.append(Container(file, workload, str(container.get("name", "?")),
                                   container["image"], tuple(dict.fromkeys(secrets))))
    return found


def _volume_secrets(volume: dict[str, Any], namespace: str) -> list[str]:
    sources = [volume.get("secret")]
    sources += [s.get("secret") for s in (volume.get("projected") or {}).get("sources") or []
                if isinstance(s, dict)]
    found = []
    for source in sources:
        if not isinstance(source, dict):
            continue
        name = source.get("secretName") or source.get("name")
        if not name:
            continue
        items = [i.get("key") for i in source.get("items") or [] if isinstance(i, dict)]
        found += [f"k8s:{namespace}/{name}/{key}" for key in items if key] or [
            f"k8s:{namespace}/{name}"]
    return found


def normalize_image(reference: str) -> tuple[str, str | None]:
    """(registry/repository:tag, sha256 digest or None) of an image reference."""
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest" if not digest else ""
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    return name, digest or None


def image_matches(reference: str, subjects: list[str]) -> bool:
    """Whether a container image is an SBOM's subject: same digest when both have one,
    else the same repository (digest-pinned container) or repository:tag."""
    name, digest = normalize_image(reference)
    digests = [s for s in subjects if s.startswith("sha256:")]
    if digest is not None and digests:
        return digest in digests
    names = [normalize_image(s)[0] for s in subjects if not s.startswith("sha256:")]
    if digest is not None:
        return any(_repository(other) == _repository(name) for other in names)
    return name in names


def _repository(name: str) -> str:
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}"
