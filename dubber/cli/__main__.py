"""`python -m dubber.cli`: the `dub` command where its console script is not installed."""
import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
