"""Editor integrations: the DaVinci Resolve script (resolve/), the Blender extension (blender/)
and their installer (install.py). The editor-side code is standard-library only and talks to
dubber through the `dub` command and the manifest it writes."""
