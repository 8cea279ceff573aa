"""Kubernetes manifests: containers, the Secrets they read, images matched to SBOM subjects."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.scope import k8s
from keyturn.scope.errors import ScopeError

MANIFESTS = Path(__file__).parent / "fixtures" / "manifests"
DIGEST = "sha256:" + "1" * 64


def test_deployment_and_cronjob_secrets() -> None:
    containers = k8s.parse((MANIFESTS / "api.yaml").read_text(), "api.yaml")
    api, report = containers
    assert api.workload == "Deployment/prod/api"
    assert api.secrets == ("k8s:prod/orders-db/password", "k8s:prod/api-env")
    assert report.workload == "CronJob/prod/report"
    assert report.secrets == ("k8s:prod/report-creds",)


def test_lists_init_containers_projected_volumes_and_items() -> None:
    text = """kind: List
items:
  - kind: Pod
    metadata: {name: p}
    spec:
      initContainers:
        - {name: init, image: busybox, volumeMounts: [{name: v, mountPath: /v}]}
      containers:
        - {name: main, image: app}
      volumes:
        - name: v
          projected:
            sources:
              - secret: {name: tls, items: [{key: tls.key, path: k}]}
              - configMap: {name: c}
"""
    init, main = k8s.parse(text, "pod.yaml")
    assert init.secrets == ("k8s:default/tls/tls.key",)
    assert main.secrets == ()


@pytest.mark.parametrize(("image", "subjects", "hit"), [
    (f"ghcr.io/acme/api:1.4.2@{DIGEST}", [DIGEST], True),
    (f"ghcr.io/acme/api@{DIGEST}", ["ghcr.io/acme/api", "sha256:" + "2" * 64], False),
    (f"ghcr.io/acme/api@{DIGEST}", ["ghcr.io/acme/api:1.4.2"], True),
    ("ghcr.io/acme/api:1.4.2", ["ghcr.io/acme/api:1.4.2", DIGEST], True),
    ("ghcr.io/acme/api:1.4.3", ["ghcr.io/acme/api:1.4.2"], False),
    ("nginx", ["docker.io/library/nginx:latest"], True),
    ("acme/tool:1", ["docker.io/acme/tool:1"], True),
    ("localhost:5000/tool", ["localhost:5000/tool:latest"], True),
])
def test_images_match_sbom_subjects(image: str, subjects: list[str], hit: bool) -> None:
    assert k8s.image_matches(image, subjects) is hit


@pytest.mark.parametrize(("text", "message"), [
    ("kind: Pod\n  bad: [\n", "invalid YAML"),
    ("- 1\n", "a manifest document must be a mapping"),
    ("kind: Deployment\nmetadata: {name: d}\nspec: {}\n", "no pod spec at spec.template.spec"),
    ("kind: Pod\nspec:\n  containers: [{name: c}]\n", "a container without an image"),
])
def test_manifest_rejections(text: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        k8s.parse(text, "m.yaml")
