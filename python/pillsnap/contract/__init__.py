"""What training, export and both serving backends agree on, on the ground floor.

``ops`` turns a photo into model inputs and model outputs into an answer: the pill crop the
pack writer stores, the eval crop and normalisation the classifier sees, the letterbox the
detector sees, the open-set score and the answer's shape. It imports numpy and Pillow only,
never another ``pillsnap`` module, because ``python -m pillsnap.export --triton`` copies the
file into Triton's python models (the NGC container has no PillSnap installed). Every floor
above (data, train, infer, serve, export, eval) imports it; it imports none of them.

    from pillsnap.contract import ops
    python -m pytest tests/contract
"""
