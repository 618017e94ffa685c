"""improv's shipped voices: NAME.npz (what plays, numpy) and NAME.pt (torch: evaluation, fine-tuning).

This folder is installed as the package ``improv.checkpoints`` (see pyproject.toml), so an
installed improv finds its voices without a checkout; ``improv.model.voices`` reads it.
"""
