"""keyturn: declarative, durable, audited credential rotation after a supply-chain breach."""

__version__ = "0.1.0"
