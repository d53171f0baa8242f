"""A small nameko project, as a nameko user would have written it (see
docs/migrating-from-nameko.md): it imports nameko, and runs on shimeji
under ``shimeji.compat.nameko``."""
