"""The embedded local stack (Temporal dev server, OpenBao, moto) for demos and tests."""
