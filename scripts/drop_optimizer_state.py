"""Drop the optimizer state from shipped checkpoints to keep them small:
``python scripts/drop_optimizer_state.py data/black_box/lrua_2way_1shot/checkpoint.pt ...``.

Adam keeps two numbers per weight, so a checkpoint with its state is about three times the weights.
Evaluation and the notebooks need only the weights; ``--resume`` of a checkpoint without the state
continues with a fresh Adam and says so (course_lib.runs.load_checkpoint), so it is not an exact resume.
Each file is rewritten atomically; a file without optimizer state is left as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from course_lib.runs import CHECKPOINT_FORMAT, atomic_write, read_checkpoint


def drop_optimizer_state(path: Path) -> bool:
    """Remove ``optimizer`` from the checkpoint at ``path``; True if it held one."""
    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"{path} is not a course_lib checkpoint (format {CHECKPOINT_FORMAT})")
    if "optimizer" not in payload:
        return False
    del payload["optimizer"]
    atomic_write(path, lambda temporary: torch.save(payload, temporary))
    return True


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    for name in argv:
        path = Path(name)
        if not path.is_file():
            raise SystemExit(f"{path} does not exist")
    for name in argv:
        before = Path(name).stat().st_size
        if drop_optimizer_state(Path(name)):
            print(f"{name}: {before / 1e6:.1f} MB -> {Path(name).stat().st_size / 1e6:.1f} MB")
        else:
            print(f"{name}: holds no optimizer state; unchanged")


if __name__ == "__main__":
    main(sys.argv[1:])
