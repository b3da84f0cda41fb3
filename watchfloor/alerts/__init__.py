"""Alerts: correlate detections into incidents, route them to agencies under their sharing
agreements, audit every delivery, issue deconfliction notices and track feedback.

Plain Python over batches. May import ``watchfloor.core`` and ``watchfloor.config``; never
``detectors``, ``streams``, ``kafka`` or ``ops``.
"""
