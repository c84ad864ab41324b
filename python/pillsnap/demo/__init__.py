"""PillSnap's main job end to end on small generated data (``python -m pillsnap.demo``)."""

from __future__ import annotations
