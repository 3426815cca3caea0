"""The methods: RDDM, Resfusion, SR3 and DDIM as pure torch math and networks.

No file or tracking I/O lives here; the harness in ``bench`` does that.
"""

from collections.abc import Callable
from typing import Any

#: The names users type (``rddm``, ``rddm-sm-res``, ``resfusion``, ...) -> method factories.
METHODS: dict[str, Callable[..., Any]] = {}
