"""alphaloop: imitation first, then reinforcement, with learning and search working together."""

from alphaloop.episode import Episode

__all__ = ["Episode"]
__version__ = "0.1.0"
