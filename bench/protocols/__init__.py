"""Evaluation protocols: named objects that fix every convention of a paper's metrics.

>>> protocol = get_protocol("istd", weights_dir)
>>> result = protocol.evaluate(pred_uint8, target_uint8, mask_uint8, names)
"""

from bench.conventions import VARIANTS
from bench.protocols import generation, restoration  # noqa: F401  (register the protocols)
from bench.protocols.base import PROTOCOLS, Protocol, get_protocol, register_variant

for _variant in VARIANTS.values():  # istd-origin, lol-gtmean, ... (bench/conventions.py)
    register_variant(PROTOCOLS.get(_variant.base), _variant)

__all__ = ["PROTOCOLS", "Protocol", "get_protocol"]
