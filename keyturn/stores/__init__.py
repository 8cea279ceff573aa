"""Secret stores: where new credential values are staged and delivered (`base.Store`).

Store types are found by name through `registry` (the "keyturn.stores" entry
point group). This package imports no SDK, so workflow code may import its
`base` and `errors` modules safely.
"""
