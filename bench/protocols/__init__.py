"""Evaluation protocols: named objects that fix every convention of a paper's metrics.

>>> protocol = get_protocol("istd", weights_dir)
>>> result = protocol.evaluate(pred_uint8, target_uint8, mask_uint8, names)
"""

from bench.protocols import generation, restoration  # noqa: F401  (register the protocols)
from bench.protocols.base import PROTOCOLS, Protocol, get_protocol

__all__ = ["PROTOCOLS", "Protocol", "get_protocol"]
