import pytest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from chat.socket_options import share_protocol_options

PEER = IPv4Address("TCP", "127.0.0.1", 50000)


@pytest.fixture(autouse=True)
def shared_options() -> None:
    share_protocol_options()


@pytest.fixture
def factory() -> WebSocketFactory:
    factory = WebSocketFactory(object(), server="Daphne")
    factory.setProtocolOptions(
        autoPingTimeout=7, openHandshakeTimeout=0, maxMessagePayloadSize=1000
    )
    return factory


def connected(factory: WebSocketFactory) -> WebSocketProtocol:
    protocol = factory.buildProtocol(PEER)
    protocol.makeConnection(StringTransport(peerAddress=PEER))
    return protocol


def test_a_connection_has_the_factorys_options_without_a_copy_of_its_own(factory):
    protocol = connected(factory)

    assert isinstance(protocol, WebSocketProtocol)
    assert protocol.factory is factory
    assert (protocol.autoPingTimeout, protocol.maxMessagePayloadSize) == (7, 1000)
    assert protocol.allowedOrigins is factory.allowedOrigins
    copied = set(WebSocketProtocol.CONFIG_ATTRS) & set(vars(protocol))
    assert copied == set()


def test_a_function_among_the_options_is_called_as_the_factory_holds_it(factory):
    """Browsers offer permessage-deflate: autobahn asks perMessageCompressionAccept(offers)."""
    protocol = connected(factory)

    assert protocol.perMessageCompressionAccept is factory.perMessageCompressionAccept
    assert protocol.perMessageCompressionAccept([]) is None


def test_connections_share_one_class_until_the_factorys_options_change(factory):
    first, second = connected(factory), connected(factory)
    factory.setProtocolOptions(autoPingTimeout=9)
    third = connected(factory)

    assert type(first) is type(second)
    assert type(third) is not type(first)
    assert (first.autoPingTimeout, third.autoPingTimeout) == (7, 9)


def test_patching_twice_patches_once():
    patched = WebSocketFactory.buildProtocol

    share_protocol_options()

    assert WebSocketFactory.buildProtocol is patched
