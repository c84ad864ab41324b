"""PillSnap: identify Korean oral drugs from photos.

Sub-packages, one per stage: ``config``, ``data``, ``train``, ``export``, ``serve``.
The Rust extension lives in ``pillsnap._native`` and is imported only where it is used,
so that the config and data tools work in a plain checkout (``PYTHONPATH=python``).
"""

from __future__ import annotations

__version__ = "0.1.0"
