"""Above the engine: the middle floor (viewmodel/) and the two faces on it, the Textual app (app/) and the
headless command line (cli/). docs/ARCHITECTURE.md draws the floors."""
