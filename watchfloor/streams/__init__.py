"""Streams: the Faust app, topics, decoding and validation, and the CLI."""
