"""`python -m dubber.cli`: the `dub` command where its console script is not installed."""
import sys

from .launch import run

if __name__ == "__main__":
    sys.exit(run())
