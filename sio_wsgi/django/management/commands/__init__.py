"""``runsio``."""
