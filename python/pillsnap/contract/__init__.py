"""What training, export and both serving backends agree on, below all of them.

``ops`` turns a photo into model inputs and model outputs into an answer: the pill crop the
pack writer stores, the eval crop and normalisation the classifier sees, the letterbox the
detector sees, the open-set score and the answer's shape. It imports numpy and Pillow only,
never another ``pillsnap`` module, because ``python -m pillsnap.export --triton`` copies the
file into Triton's python models (the NGC container has no PillSnap installed). ``photo``
opens an upload and cuts those inputs from it, on the Rust extension where it is installed
(its one ``pillsnap`` import, guarded) and with ``ops``' Pillow code otherwise; Triton's
models get a copy of it too. Every floor above (data, train, infer, serve, export, eval)
imports them; they import none of them.

    from pillsnap.contract import ops
    from pillsnap.contract.photo import open_photo
    python -m pytest tests/contract
"""
