"""The wire protocol: what crosses a process boundary between the engine, the controllers and the sensors.

``messages`` (every message, typed and versioned), ``junction`` (the junction spec a controller is configured
with), ``bus`` (the ZeroMQ sockets: telemetry pub/sub through a forwarder, the ROUTER/DEALER command channel),
``security`` (CURVE keys and the ZAP allow-list), ``telemetry`` (the Prometheus endpoint) and ``service``
(running a component as a process). It imports nothing else of Lintas: the engine and the controllers both
stand on it, and a controller written in another language needs only docs/protocol.md.
"""
