"""The watch folder: `watcher` runs the service, `journal` holds its on-disk state (names, journal, lock)."""
