"""Hear it and see it: MIDI files rendered to audio through FluidSynth, and piano-roll pictures."""
