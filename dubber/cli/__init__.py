"""The `dub` command: `main` parses and dispatches, `progress` draws, `doctor` checks the machine."""
