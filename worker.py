"""Entry point: `python worker.py` is the same as `keyturn worker`."""

from keyturn.worker import main

if __name__ == "__main__":
    main()
