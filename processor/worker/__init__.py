"""The stream worker: the Faust adapter around the pure core.

The journey agent (agent.py) reads touchpoints, hands them to the core's engine and sends
what it emits through the outbox; batch.py says when inputs are acked; the re-keyer,
metrics, sensor, web views and query access sit beside it. Its state (state/) and its
workarounds for Faust and brokers (patches/) have rooms of their own. Imports config,
kafka and the core; never tools or cli (tests/unit/test_layers.py).
"""
