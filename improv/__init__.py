"""improv: a streaming real-time MIDI improviser built on a stateful LSTM."""

__version__ = "0.2.0"  # the same as pyproject.toml's (a test keeps them equal)
