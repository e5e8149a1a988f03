"""`python -m dubber.watch ROOT`: the watch folder without the rest of the CLI."""
import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
