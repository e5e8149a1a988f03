"""The watch folder: `service` runs it (locks, log, `run_watch`), `watcher` takes and dubs the
files, `inbox` finds what is ready to take, `journal` holds its on-disk state (names, journal,
what the inbox scan remembers, lock), `relocate` points a finished job's timelines and manifest
at their final places, `settings` reads dub-watch.toml, `dispatch` hands its dubs to the batch
executors, and `command` is its command line."""
