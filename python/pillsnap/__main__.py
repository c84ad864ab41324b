"""``python -m pillsnap`` lists the commands."""

from __future__ import annotations

COMMANDS = """PillSnap commands:
  python -m pillsnap.demo      the main job end to end on small generated data
  python -m pillsnap.data      synth | scan | stage (dataset tools)
  python -m pillsnap.config    show | check (the resolved config)
  python -m pillsnap.train     train what train.task asks (cls: the classifier)
  python -m pillsnap.export    ONNX export of best.pt (+ det/best.pt) with parity checks;
                               --triton writes the Triton model repository
  python -m pillsnap.serve     triton: run tritonserver on the repository (--docker: GPU)
  python -m pillsnap.ops       release | rollback | backup | rotate-logs (operations)
  python -m pillsnap.bench     loader | train | latency (benchmarks)
"""

if __name__ == "__main__":
    print(COMMANDS, end="")
