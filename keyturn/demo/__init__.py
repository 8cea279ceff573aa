"""`make demo` (`python -m keyturn.demo`): the tier 1/2/3 matrix rotated on the embedded stack.

`seed` makes what the demo runbook rotates, `proofs` checks the result against
the servers, `__main__` drives the run as an operator and approvers would.
"""
