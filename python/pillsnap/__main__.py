"""``python -m pillsnap`` lists the commands."""

from __future__ import annotations

COMMANDS = """PillSnap commands (each takes --help):
  python -m pillsnap.demo          the main job end to end on small generated data
  python -m pillsnap.data          synth | scan | stage | pack | yolo (dataset tools)
  python -m pillsnap.config        show | check (the resolved config)
  python -m pillsnap.train         train what train.task asks (cls, det or both)
  python -m pillsnap.train.detect  the detector alone
  python -m pillsnap.export        ONNX export of best.pt (+ det/best.pt) with parity checks;
                                   --quantize int8; --triton writes the Triton model repository
  python -m pillsnap.eval          judge the served answers on a split (in-process or Triton)
  python -m pillsnap.serve         api: the HTTP API | triton: run tritonserver (--docker: GPU)
  python -m pillsnap.ops           release | releases | activate | rollback | verify | backup |
                                   rotate-logs (operations)
  python -m pillsnap.bench         loader | train | latency | serve | standin | api (benchmarks)
"""

if __name__ == "__main__":
    print(COMMANDS, end="")
