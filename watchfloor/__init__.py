"""watchfloor: real-time threat monitoring for agencies that share intelligence."""

__version__ = "0.1.0"
