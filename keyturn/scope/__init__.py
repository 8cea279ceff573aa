"""Scope the blast radius: from a malicious-package advisory to the runbook that rotates
what the package could read.

Pure and offline (only `collect_github` talks to GitHub): `advisory` says which
versions are compromised, the lockfile and SBOM parsers (`npm_lock`,
`pnpm_lock`, `yarn_lock`, `python_locks`, `sbom`) say where they were
installed, `workflows` and `k8s` say which secrets the code that installed
them could read, `catalog` says which credential each secret location is,
`scan` puts it together into a `report.Report` and `runbook_gen` writes the
runbook. See docs/scope.md.
"""
