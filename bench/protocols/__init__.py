"""Evaluation protocols: named objects that fix every convention of a paper's metrics.

>>> protocol = get_protocol("istd", weights_dir)
>>> result = protocol.evaluate(pred_uint8, target_uint8, mask_uint8, names)
"""

import importlib
import pkgutil

from bench.conventions import BASE_PROTOCOLS, VARIANTS
from bench.protocols.base import PROTOCOLS, Protocol, get_protocol, register_variant

for _module in pkgutil.iter_modules(__path__):  # every protocol file registers its classes
    if _module.name not in ("base", "audit_scoring"):
        importlib.import_module(f"{__name__}.{_module.name}")
_missing = set(BASE_PROTOCOLS) - set(PROTOCOLS.names())
if _missing:  # a name in bench/conventions.py without its class
    raise ImportError(f"protocols named in bench/conventions.py but not registered: {_missing}")

for _variant in VARIANTS.values():  # istd-origin, lol-gtmean, ... (bench/conventions.py)
    register_variant(PROTOCOLS.get(_variant.base), _variant)

__all__ = ["PROTOCOLS", "Protocol", "get_protocol"]
