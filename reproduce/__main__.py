"""``python -m reproduce``: the pipeline's command line (see :mod:`reproduce.cli`)."""

from reproduce.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
