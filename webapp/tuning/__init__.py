"""Model versions and the tuning loop on the web side: the registry, canaries, the beat job.

The learning itself (labels, critic, DPO, canary statistics) is in generation/tuning, which never
imports Django; this app reads the feedback table into it and records what comes out.
"""
