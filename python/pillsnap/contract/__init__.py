"""What training, export and both serving backends agree on, below all of them.

- ``recipe``: the serving recipe, one typed value (crop geometry, normalisation, classes,
  temperature, open-set rule, the detector's thresholds) that training makes, export writes
  once and every server reads;
- ``ops`` turns a photo into model inputs and builds the answer's shape: the pill crop the
  pack writer stores, the eval crop and normalisation the classifier sees, the letterbox the
  detector sees;
- ``gallery``: the known drugs as class means in feature space, the drugs enrolled without
  retraining among them;
- ``decide``: from logits and features to each pill's answer (the open-set verdict, enrolled
  drugs, near twins);
- ``photo`` opens an upload and cuts those inputs from it, on the Rust extension where it is
  installed (its one ``pillsnap`` import, guarded) and with ``ops``' Pillow code otherwise.

They import numpy and Pillow only, never another ``pillsnap`` module, because ``python -m
pillsnap.export --triton`` copies each file into Triton's python models (the NGC container
has no PillSnap installed; they import each other relatively here, by their copies' names
there). Every floor above (data, train, infer, serve, export, eval) imports them; they
import none of them.

    from pillsnap.contract import decide, ops
    from pillsnap.contract.photo import open_photo
    python -m pytest tests/contract
"""
