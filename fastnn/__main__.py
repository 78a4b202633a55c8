"""``python -m fastnn ...`` is the same as the ``fastnn`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
