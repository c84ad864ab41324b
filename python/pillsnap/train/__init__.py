"""Training: the classification trainer (timm) and the detection trainer (ultralytics).

Entry point (issue 4): ``python -m pillsnap.train --cfg config.yaml train.batch_size=128``.
"""

from __future__ import annotations
