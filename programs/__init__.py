"""Shipped Structured Text programs (installed as package data)."""
