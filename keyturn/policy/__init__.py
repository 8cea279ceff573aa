"""The approval policy: the server-side file that says who approves what, which a runbook
can reference and tighten but never loosen.

`keyturn.policy.load` reads it (or gives the built-in default when none is
configured), `keyturn.policy.model` is its format, `keyturn.policy.gates`
applies it to a runbook when a run's plan is compiled. (Nothing is imported
here, so the runbook package can use the model without loading settings.)
"""
