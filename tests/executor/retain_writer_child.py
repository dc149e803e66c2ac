"""Child process for the kill -9 tests: writes retain snapshots in a loop through RetainStore.

Usage: python retain_writer_child.py <retain path> <mode>
mode "loop": write snapshot n = 1, 2, ... forever, printing "acked n" after each is on disk.
mode "pause-before-commit" / "pause-mid-write": after two acked snapshots, stop inside the third write
(temp file complete but not renamed / temp file half written), print the stage and wait to be killed.
"""

from __future__ import annotations

import sys
import time

from plcrun.executor.retain_store import RetainStore

VARIABLES = 20_000
LAYOUT = [(f"v{i}", "DINT") for i in range(VARIABLES)] + [("n", "DINT")]


def snapshot(n: int) -> dict[str, object]:
    values: dict[str, object] = {f"v{i}": n * 100_000 + i for i in range(VARIABLES)}
    values["n"] = n
    return values


class PausingStore(RetainStore):
    """Stops at a chosen point of the third write."""

    mode = ""
    writes_started = 0

    def _write_temp(self, data: bytes) -> None:
        self.writes_started += 1
        if self.mode == "pause-mid-write" and self.writes_started == 3:
            with open(self._tmp_path, "wb") as tmp:  # what a crash in the middle of os.write leaves
                tmp.write(data[: len(data) // 2])
            print("stage half-written", flush=True)
            time.sleep(600)
        super()._write_temp(data)

    def _commit(self) -> None:
        if self.mode == "pause-before-commit" and self.writes_started == 3:
            print("stage before-commit", flush=True)
            time.sleep(600)
        super()._commit()


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    store = PausingStore(path, "layout-1", LAYOUT, min_interval_s=0.0)
    store.mode = mode
    store.load()
    store.start()
    n = 0
    while True:
        n += 1
        store.submit(snapshot(n))
        if not store.flush(timeout=60):
            print(f"error {store.last_error}", flush=True)
            return
        print(f"acked {n}", flush=True)


if __name__ == "__main__":
    main()
