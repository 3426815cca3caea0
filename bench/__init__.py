"""bench: benchmark and reproducibility harness for residual diffusion models."""

from bench import _tvcompat

# Before anything can import torchvision (lpips, torch-fidelity): see _tvcompat.
_tvcompat.apply()

__version__ = "0.1.0"
