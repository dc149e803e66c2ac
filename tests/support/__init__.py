"""Helpers shared by tests that talk to real peers (a Mosquitto broker, TLS certificates)."""
