"""End-to-end evaluation of the pill identifier: ``python -m pillsnap.eval``."""
