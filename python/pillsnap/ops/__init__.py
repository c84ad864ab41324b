"""Operations: model releases with checksums and rollback, run backups, log rotation.

    python -m pillsnap.ops --help
"""

from __future__ import annotations
