"""Teach a served model a new drug from a few photos, without retraining or re-exporting.

    python -m pillsnap.enroll --export artifacts/export --k-code K-012345 a.jpg b.jpg c.jpg
    python -m pillsnap.enroll --export artifacts/export --triton-repo triton_models \\
        --k-code K-012345 --drugs artifacts/manifest/drugs.json photos/*.jpg
    python -m pillsnap.enroll --export artifacts/export --remove K-012345
    python -m pillsnap.enroll --export artifacts/export --rollback     # undo the last change
    python -m pillsnap.enroll --export artifacts/export --list

A new drug is one more row of the gallery (``pillsnap.contract.gallery``): the mean of its
photos' pooled features, taken exactly as serving takes them (the detector's best box,
the recipe's crop, the classifier's features output). Its drug-table entry (names, EDI
codes, shape, colours, imprints) travels inside the gallery, so answers name it with its
metadata; the open-set threshold is not touched and still holds, since an enrolled drug's
distances are normalised like a trained drug's. Both servers read the gallery again when
the file is replaced: the embedded API on its next answer, Triton's ``postprocess`` (whose
copy ``--triton-repo`` rewrites) on its next request. No server restarts.

Every change is checked before anything is written, written atomically (a temporary file,
then a rename) under a lock that keeps a second enrollment out, kept in the gallery's
history (``--rollback`` restores the previous version), logged as one ``enrollment:`` line
and appended to ``enrollment_log.jsonl``. The photos are kept under ``enrolled/<K-code>/``:
enroll the drug into the next model from them, with ``--from-export``.
"""
