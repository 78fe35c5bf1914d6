"""The conformance kit: ``lintas conformance`` plays the engine's side (and the bus's) against one controller of
any vendor, through scripted cases, and checks from the states the controller sends and publishes that it obeys
docs/protocol.md (requirements C1-C28) and the safety rules of docs/safety.md.

``kit`` is the library (cases, checks, the result of each requirement); ``cli`` the command. It stands on the
wire protocol alone (engine/protocol/) and shares no code with Lintas' own controller, whose behaviour it judges.
"""
