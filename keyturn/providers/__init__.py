"""Credential providers: one module per credential kind, each implementing `base.Provider`.

Providers are found by name through `registry` (the "keyturn.providers" entry
point group). This package imports no SDK, so workflow code may import its
`base` and `errors` modules safely.
"""
