"""Run a command; write its wall time, exit status and peak RSS as JSON to a file.

    python benchmarks/measure_child.py OUT.json CMD [ARGS...]

Why a launcher: on Linux a child's ru_maxrss starts from the RSS of the process that forked
it (exec keeps the pre-exec high-water mark), so a child started straight from a benchmark
that holds a million-number emulator reports the benchmark's memory, not its own (both the
SDK script and the pipeline showed 4.0 GB at 1,000,000 numbers that way). This launcher is a
small process: the command it forks starts from its few megabytes, and wait4 gives the
command's own peak. Started with -S -E, it imports nothing but the standard library.
"""

import json
import os
import subprocess
import sys
import time


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[2:]
    began = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - began
    with open(out, "w") as f:
        json.dump({"wall": wall, "peak_rss_mb": usage.ru_maxrss / 1024,
                   "exit": os.waitstatus_to_exitcode(status)}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
