"""autobahn's name of a method for its debug lines, worked out once per method.

autobahn logs at debug level for every frame it writes or reads and every connection it
opens, and it builds the line's arguments before the logger drops it (daphne leaves
autobahn's loggers at info). One of them is `hltype(self.sendData)`: the method's module and
qualified name, split, highlighted and joined again, 1.5-2.1 µs each time, so every frame
written or read, to each of a post's recipients too, paid that for a line nobody sees.

The name depends only on the function, so the two autobahn modules that call it for every
frame and connection get a stand-in that remembers it per function: the same text, from a
dictionary.
"""

import importlib
from collections.abc import Callable
from typing import Any

# The modules that call hltype for every frame and every connection.
_MODULES = ("autobahn.websocket.protocol", "autobahn.twisted.websocket")


def remembering(hltype: Callable[[Any], str]) -> Callable[[Any], str]:
    """hltype, with its text kept per function (a bound method's function, a class)."""
    names: dict[Any, str] = {}

    def remembered_hltype(obj: Any) -> str:
        function = getattr(obj, "__func__", obj)
        try:
            return names[function]
        except KeyError:
            text = names[function] = hltype(obj)
            return text
        except TypeError:  # not hashable: nothing to remember it by
            return hltype(obj)

    remembered_hltype.remembers = True  # type: ignore[attr-defined]
    return remembered_hltype


def remember_debug_names() -> None:
    """Give autobahn's per-frame modules the remembering hltype, once; a no-op without it."""
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if not getattr(module.hltype, "remembers", False):
            module.hltype = remembering(module.hltype)
