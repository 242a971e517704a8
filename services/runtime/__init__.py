"""Processes the service runs beside it: redis-server, the embedded default, start-up checks."""
