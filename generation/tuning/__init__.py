"""The tuning loop's parts: feedback -> labels -> critic and DPO; a simulated audience to test it.

    labels.py    feedback events -> per-listener scores, preference pairs, unpaired thumbs (pure)
    critic.py    a Bradley-Terry reward model over the LM trunk; the best-of-n song critic
    dpo.py       DPO on the token LM against a frozen reference, checkpoint kept on held-out pairs
    audience.py  listeners with a hidden taste over probe attributes, who play, skip, thumb, vote

See docs/tuning.md.
"""
