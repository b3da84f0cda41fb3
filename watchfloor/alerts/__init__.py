"""Alerts stage: correlate detections into incidents, share them under agreements, audit.

Kept import-free on purpose: ``watchfloor.config`` imports ``watchfloor.alerts.schema``,
and the stage modules import ``watchfloor.config``; importing them here would be circular.
"""
