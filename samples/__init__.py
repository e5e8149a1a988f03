"""Synthetic sample media with exact ground truth; see `samples.synth` (`python -m samples.synth`)."""
