"""The Triton model repository written from an export folder (``python -m pillsnap.export
--triton``): config files (``configs.py``, ``pbtxt.py``), the python models' sources
(``models/``, copied as ``model.py`` next to a copy of ``pillsnap.contract.ops``) and the
writer (``repository.py``). Layout and serving contract: docs/triton.md.
"""

from __future__ import annotations
