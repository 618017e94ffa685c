"""improv: a streaming real-time MIDI improviser built on a stateful LSTM."""

__version__ = "0.1.0"
