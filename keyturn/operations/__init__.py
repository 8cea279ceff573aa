"""Operations on runs that the CLI and the HTTP API share: one core, two thin faces.

  connect    a Temporal client with keyturn's converter (TLS, mTLS, API key)
  plans      compile_plan: a runbook compiled into one run's ExecutionPlan under the
             server's (or CLI's) settings; the one place a run's plan is made
  runs       start (after preflight), describe, list, cancel, wait, a run's plan
  gates      approve or reject the open gate of a tier or a credential
  supply     an operator-made value straight into the store, its fingerprint to the run
  preflight  every check a run makes before its first change
  errors     what these refuse with (RunError and its subclasses, TemporalUnavailable, ...)

The faces (keyturn.cli, keyturn.api) import from here; nothing here imports a face.
"""
