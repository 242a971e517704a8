"""Ways events come in besides HTTP: the Redis inbox."""
