"""``plcrun doctor``: is this host ready to run plcrun as deployed? One line per check (PASS, WARN,
FAIL) and an exit code: 0 when nothing failed (with ``strict``, nothing warned either), 1 otherwise.

``root`` is where ``/proc``, ``/sys`` and ``/etc`` are read (``/`` on a gateway; a fake tree in the
tests). The real-time and memory limits are those of the process running the check: run it as the
service (``systemd-run --pty -p User=v2g-service ...`` or ``sudo -u v2g-service``) to see the unit's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .host import (
    Check,
    Status,
    check_clocksource,
    check_governor,
    check_isolation,
    check_kernel,
    check_memlock,
    check_rt_priority,
    check_thermal,
    check_writable,
)
from .site import NftLister, check_certificates, check_firewall, nft_lister

__all__ = ["DEFAULT_STATE_DIRECTORY", "Check", "Status", "exit_code", "render", "run_checks"]

DEFAULT_STATE_DIRECTORY = Path("/var/lib/plcrun")


def run_checks(
    root: Path = Path("/"),
    *,
    site_file: Path | None = None,
    state_directories: Iterable[Path] = (DEFAULT_STATE_DIRECTORY,),
    scan_cpu: int | None = None,
    nft: NftLister | None = nft_lister,
) -> list[Check]:
    if nft is nft_lister and root.resolve() != Path("/"):
        nft = None  # nft lists this machine's rules, not those of the tree under root
    checks = [
        check_kernel(root),
        check_isolation(root, scan_cpu),
        check_rt_priority(root),
        check_memlock(root),
        check_clocksource(root),
        check_governor(root),
        check_thermal(root),
        *check_writable(root, state_directories),
    ]
    if site_file is not None:
        checks.extend(check_certificates(site_file))
    checks.append(check_firewall(root, nft))
    return checks


def render(checks: list[Check], as_json: bool = False) -> str:
    if as_json:
        return json.dumps([c.to_json() for c in checks], ensure_ascii=False)
    width = max(len(c.name) for c in checks)
    lines = [f"{c.status.value.upper():4}  {c.name:{width}}  {c.detail}" for c in checks]
    counts = {s: sum(c.status is s for c in checks) for s in Status}
    lines.append(
        f"doctor: {counts[Status.PASS]} pass, {counts[Status.WARN]} warn, {counts[Status.FAIL]} fail"
    )
    return "\n".join(lines)


def exit_code(checks: list[Check], strict: bool = False) -> int:
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return 1 if any(c.status in bad for c in checks) else 0
