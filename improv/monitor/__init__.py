"""The live monitor: a local web page showing a session as it plays, with the performer's knobs."""
