"""Evaluation of the music engine's models: `python -m generation.eval <command>`."""
