"""``python -m sftlens``: the command line (also ``accelerate launch -m sftlens audit ...``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
