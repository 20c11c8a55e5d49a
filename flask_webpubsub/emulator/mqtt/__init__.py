"""The emulator's MQTT front door: MQTT 3.1.1 and 5.0 clients over WebSocket at
``/clients/mqtt/hubs/{hub}``, as the service serves them (docs/mqtt.md).

:mod:`.packets` reads and writes MQTT control packets; the sessions, topics and the upstream
events build on it and share the hubs' rosters, permissions, REST API and upstream with every
other client protocol.
"""
