"""`keyturn doctor`: check a deployment's configuration without changing anything.

Each check is a small module of its own kind (Temporal, audit, provider
identities, files); keyturn.doctor.runner runs them all concurrently, each
within a timeout, and the CLI (keyturn.cli.doctor_cmds) prints the table.
"""

from keyturn.doctor.base import Check, Context, Finding
from keyturn.doctor.runner import CHECKS, DEFAULT_TIMEOUT, run_checks

__all__ = ["CHECKS", "DEFAULT_TIMEOUT", "Check", "Context", "Finding", "run_checks"]
