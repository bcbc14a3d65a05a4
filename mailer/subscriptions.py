"""Subscribing and leaving: double opt-in, confirmation, unsubscribe (to be built)."""
