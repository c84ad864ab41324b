"""One router per concern: probes, info (version, metrics), predict (+ batch), web page."""
