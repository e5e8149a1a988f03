"""The watch folder: `watcher` runs the service, `journal` holds its on-disk state (names, journal,
lock), `settings` reads dub-watch.toml, `dispatch` hands its dubs to the batch executors, and
`command` is its command line."""
