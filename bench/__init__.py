"""bench: benchmark and reproducibility harness for residual diffusion models."""

import importlib.abc
import sys


class _TorchvisionGuard(importlib.abc.MetaPathFinder):
    """Runs the torchvision guard (bench._tvcompat) just before torchvision is first imported
    (by lpips or torch-fidelity), so that `import bench` itself stays free of torch."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" and self in sys.meta_path:
            sys.meta_path.remove(self)
            from bench import _tvcompat

            _tvcompat.apply()
        return None  # the ordinary finders import it


if "torchvision" in sys.modules:  # imported before bench: apply the guard now (no-op if loaded)
    from bench import _tvcompat

    _tvcompat.apply()
else:
    sys.meta_path.insert(0, _TorchvisionGuard())

__version__ = "0.1.0"
