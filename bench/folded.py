"""Summarise a py-spy profile in collapsed-stack form (`--py-spy` writes them).

    .venv/bin/python -m bench.folded bench/results/logs/<stamp>/run1-W1-server.folded [N]

Prints the N frames (default 25) with the largest share of samples anywhere on the stack
(inclusive), then the N largest leaf frames (self).
"""

import sys
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [frame for frame in stack.split(";") if frame]
        for frame in set(frames):
            inclusive[frame] += samples
        if frames:
            leaf[frames[-1]] += samples
    if not total:
        return f"{path}: no samples"
    lines = [f"{path}: {total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {frame}" for frame, n in leaf.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 25))
