"""daphne's WebSocket connections read autobahn's options from their class, not from copies.

At every connection autobahn copies each of its 29 protocol options from the factory onto the
new protocol object, then pretty-prints all of them for a debug line that is dropped: about
120 µs of every handshake, and the copies make each open socket's attribute table larger.
autobahn copies only the options the object does not already have, so daphne's factory here
builds a subclass that carries the factory's current options as class attributes and has no
options left to copy. The values are the same objects a copy would have held.
"""

from typing import Any


def share_protocol_options() -> None:
    """Patch daphne's WebSocketFactory.buildProtocol once; a no-op without daphne."""
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:
        return
    build = WebSocketFactory.buildProtocol
    if getattr(build, "shares_options", False):
        return

    def build_protocol(self: Any, addr: Any) -> Any:
        base = type(self).protocol
        options = {name: getattr(self, name) for name in base.CONFIG_ATTRS}
        shared = self.__dict__.get("protocol")
        # Built again if the factory's options changed (daphne sets them once, before
        # listening).
        if shared is None or shared.shared_options != options:
            self.protocol = type(
                base.__name__,
                (base,),
                {
                    # A function kept as a class attribute would be bound to the
                    # connection (autobahn calls perMessageCompressionAccept(offers)).
                    **{
                        name: staticmethod(value) if callable(value) else value
                        for name, value in options.items()
                    },
                    "CONFIG_ATTRS": (),
                    "shared_options": options,
                    "__module__": base.__module__,
                },
            )
        return build(self, addr)

    build_protocol.shares_options = True  # type: ignore[attr-defined]
    WebSocketFactory.buildProtocol = build_protocol
