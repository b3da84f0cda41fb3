"""Evaluation: run the worker's own pipeline over labelled data (the simulator's scenario,
replayed captures) and score detections and alerts per threat and per detector. May import
every package except ``watchfloor.ops``.
"""
