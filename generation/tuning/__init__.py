"""The tuning loop's parts: feedback -> labels -> critic and DPO; a simulated audience to test it.

    labels.py      feedback events -> per-listener scores, preference pairs, unpaired thumbs (pure)
    critic.py      a Bradley-Terry reward model over the LM trunk; the best-of-n song critic
    dpo.py         DPO on the token LM against a frozen reference, checkpoint kept on held-out pairs
    loop.py        one round: pairs split by choice set, the critic, DPO on on-policy pairs
    clips.py       items as the critic and DPO read them: codes and conditions
    guardrails.py  what tuning must not lose: codec-domain quality, prompt adherence
    canary.py      a candidate version against the promoted one: rates, bootstrap, decision (pure)
    audience.py    listeners with a hidden taste over probe attributes, who play, skip, thumb, vote
    drive.py       that audience through the real service: HTTP and the room websocket

The web side (webapp/tuning) reads the feedback table into these and keeps the model versions.
See docs/tuning.md.
"""
