"""autobahn's debug names for methods, remembered per function instead of built per frame."""

import autobahn.twisted.websocket
import autobahn.websocket.protocol
from autobahn.util import hltype
from daphne.ws_protocol import WebSocketProtocol

from chat.debug_formatting import remember_debug_names, remembering


def counted(calls: list) -> object:
    def fake_hltype(obj: object) -> str:
        calls.append(obj)
        return hltype(obj)

    return fake_hltype


def test_a_methods_name_is_autobahns_text_worked_out_once_per_function():
    calls: list = []
    remembered = remembering(counted(calls))
    first, second = WebSocketProtocol(), WebSocketProtocol()

    names = [remembered(first.sendData), remembered(second.sendData), remembered(first.onOpen)]

    assert names == [hltype(first.sendData), hltype(first.sendData), hltype(first.onOpen)]
    assert names[0] == "<autobahn.websocket.protocol.WebSocketProtocol.sendData>"
    assert len(calls) == 2


def test_functions_classes_and_other_objects_get_the_same_text_as_before():
    remembered = remembering(hltype)

    for obj in [remember_debug_names, WebSocketProtocol, 42, [1, 2]]:
        assert remembered(obj) == hltype(obj)
        assert remembered(obj) == hltype(obj)


def test_autobahns_per_frame_modules_remember_and_patching_twice_patches_once():
    remember_debug_names()
    patched = autobahn.websocket.protocol.hltype
    remember_debug_names()

    assert patched.remembers
    assert autobahn.websocket.protocol.hltype is patched
    assert autobahn.twisted.websocket.hltype.remembers
    assert patched(WebSocketProtocol().sendData) == hltype(WebSocketProtocol().sendData)
