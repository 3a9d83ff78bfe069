"""hookline: webhooks as a declared, observable and replayable part of a cluster."""

__version__ = "0.1.0"
