"""Rooms: models, Channels consumers, voting rules and the conductor (the rooms issue)."""
