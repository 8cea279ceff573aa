"""Operations on runs that the CLI and the HTTP API share: one core, two thin faces."""
