"""Azure Web PubSub for Flask: signed upstream event handlers, negotiate and the service client."""

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
from .errors import (
    ConfigurationError,
    ConnectRejection,
    InvalidConnectionStringError,
    InvalidEventError,
    InvalidOriginError,
    PayloadTooLargeError,
    SignatureError,
    UnknownHubError,
)
from .extension import WebPubSub
from .hubs import Hub
from .negotiate import NegotiateOptions

__all__ = [
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
    "InvalidOriginError",
    "MqttConnectProperties",
    "MqttDisconnectProperties",
    "MqttMessageProperties",
    "MqttProperties",
    "MqttUserProperty",
    "NegotiateOptions",
    "PayloadTooLargeError",
    "SignatureError",
    "UnknownHubError",
    "UserEvent",
    "UserEventResponse",
    "WebPubSub",
    "WebPubSubEvent",
]
