"""Kafka for the commands: topic names, admin checks, plain clients (kafka-python, no Faust).

`from kafka import ...` inside this package is an absolute import: it reaches
kafka-python, never this package.
"""
