"""Azure Web PubSub for Flask: authenticated upstream event handlers, negotiate, the service
client and a local emulator."""

__version__ = "0.2.0.dev0"

from .core.events import (
    ClientCertificate,
    ConnectedEvent,
    ConnectEvent,
    ConnectResponse,
    DisconnectedEvent,
    GroupEvent,
    GroupJoinedEvent,
    GroupLeftEvent,
    MqttConnectProperties,
    MqttDisconnectProperties,
    MqttMessageProperties,
    MqttProperties,
    MqttUserProperty,
    UserEvent,
    UserEventResponse,
    WebPubSubEvent,
)
from .core.payload import InvalidMetadataError
from .errors import (
    AuthenticationUnavailableError,
    BearerTokenError,
    ConfigurationError,
    ConnectRejection,
    InvalidConnectionStringError,
    InvalidEventError,
    InvalidOriginError,
    PayloadTooLargeError,
    ServiceAuthenticationError,
    SignatureError,
    UnknownHubError,
)
from .extension import WebPubSub
from .hubs import Hub
from .negotiate import NegotiateOptions

__all__ = [
    "AuthenticationUnavailableError",
    "BearerTokenError",
    "ClientCertificate",
    "ConfigurationError",
    "ConnectEvent",
    "ConnectRejection",
    "ConnectResponse",
    "ConnectedEvent",
    "DisconnectedEvent",
    "GroupEvent",
    "GroupJoinedEvent",
    "GroupLeftEvent",
    "Hub",
    "InvalidConnectionStringError",
    "InvalidEventError",
    "InvalidMetadataError",
    "InvalidOriginError",
    "MqttConnectProperties",
    "MqttDisconnectProperties",
    "MqttMessageProperties",
    "MqttProperties",
    "MqttUserProperty",
    "NegotiateOptions",
    "PayloadTooLargeError",
    "ServiceAuthenticationError",
    "SignatureError",
    "UnknownHubError",
    "UserEvent",
    "UserEventResponse",
    "WebPubSub",
    "WebPubSubEvent",
]
