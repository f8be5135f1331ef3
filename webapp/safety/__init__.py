"""What keeps free text, GPU time and uploads within bounds: the prompt filter
(prompt_filter.py, pure, with its data in data/), the checks that services call with it
(checks.py) and the daily generation quotas (quotas.py). docs/safety.md explains all three."""
