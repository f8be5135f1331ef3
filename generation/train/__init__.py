"""Training loops for the music engine: `python -m generation.train <command>`."""
