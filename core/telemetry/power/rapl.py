"""CPU package power from the kernel's RAPL energy counters.

Intel and AMD (Zen, through the same ``intel-rapl`` powercap driver since Linux 5.8) expose
``/sys/class/powercap/intel-rapl:N/energy_uj``: microjoules since some point, wrapping to 0
at ``max_energy_range_uj``. Watts are the counter's advance divided by the time between two
reads. Only top-level ``package-*`` zones are summed: sub-zones (``intel-rapl:0:0`` core,
uncore) are parts of a package, ``psys`` includes it, and ``dram`` is outside the CPU.
The older ``amd_energy`` hwmon driver (``/sys/class/hwmon/hwmonN/energyM_input`` labelled
``EsocketK``, a 64-bit accumulator) is read the same way.

Since 2020 kernels make ``energy_uj`` root-only (a side channel, CVE-2020-8694), so on most
desktops this source is unavailable to a user and the reason says so. Files are opened once
and re-read with ``pread`` at offset 0, which makes sysfs regenerate the value.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.telemetry.power.base import PowerSource, SourceUnavailable

POWERCAP_ROOT = Path("/sys/class/powercap")
HWMON_ROOT = Path("/sys/class/hwmon")
_TOP_ZONE = re.compile(r"^(intel|amd)-rapl:\d+$")
_HWMON_WRAP = 1 << 64


@dataclass
class _Counter:
    """One energy counter: an open file, its wrap range and the last value read."""

    path: Path
    fd: int
    max_range: int
    prev: int = 0


def _read_int(fd: int) -> int:
    return int(os.pread(fd, 32, 0))


class RaplPower(PowerSource):
    """Sum of the CPU packages' power, measured from energy counters."""

    name = "rapl"
    kind = "cpu"
    label = "measured"

    def __init__(self, root: Path | None = None, hwmon_root: Path | None = None) -> None:
        root = POWERCAP_ROOT if root is None else Path(root)
        hwmon_root = HWMON_ROOT if hwmon_root is None else Path(hwmon_root)
        self._counters: list[_Counter] = []
        self._prev_t: int | None = None
        try:
            self._open_powercap(root)
            if not self._counters:
                self._open_hwmon(hwmon_root)
        except BaseException:
            self.close()
            raise
        if not self._counters:
            raise SourceUnavailable(
                f"No RAPL energy counters were found (looked in {root} and for amd_energy "
                f"in {hwmon_root}); CPU power cannot be measured on this machine."
            )
        where = self._counters[0].path.parent.parent
        self.formula = (f"measured: Δ energy counter ÷ Δ time, {len(self._counters)} "
                        f"package counter(s) under {where}")

    def _open_powercap(self, root: Path) -> None:
        if not root.is_dir():
            return
        for zone in sorted(p for p in root.iterdir() if _TOP_ZONE.match(p.name)):
            name = _text(zone / "name") or "package"
            if not name.startswith("package"):
                continue
            max_range = int(_text(zone / "max_energy_range_uj") or 0) or (1 << 32)
            self._add(zone / "energy_uj", max_range)

    def _open_hwmon(self, root: Path) -> None:
        if not root.is_dir():
            return
        for mon in sorted(root.iterdir()):
            if _text(mon / "name") != "amd_energy":
                continue
            for label in sorted(mon.glob("energy*_label")):
                if _text(label).startswith("Esocket"):
                    self._add(mon / label.name.replace("_label", "_input"), _HWMON_WRAP)

    def _add(self, path: Path, max_range: int) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise SourceUnavailable(_unreadable(path, err)) from err
        counter = _Counter(path, fd, max_range)
        self._counters.append(counter)
        try:
            counter.prev = _read_int(fd)
        except (OSError, ValueError) as err:
            raise SourceUnavailable(_unreadable(path, err)) from err

    def read(self, t_ns: int, cpu_percent: float | None = None) -> float | None:
        """Average watts since the previous read (None on the first, which primes)."""
        total_uj = 0
        try:
            for c in self._counters:
                value = _read_int(c.fd)
                delta = value - c.prev
                if delta < 0:  # the counter wrapped at max_energy_range_uj
                    delta += c.max_range
                c.prev = value
                total_uj += delta
        except (OSError, ValueError):
            return None
        prev_t, self._prev_t = self._prev_t, t_ns
        if prev_t is None or t_ns <= prev_t:
            return None
        return total_uj / (t_ns - prev_t) * 1000.0  # µJ/ns = 1e3 W

    def close(self) -> None:
        for c in self._counters:
            with contextlib.suppress(OSError):
                os.close(c.fd)
        self._counters = []


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _unreadable(path: Path, err: BaseException) -> str:
    if isinstance(err, PermissionError):
        return (f"RAPL counter {path} is not readable (permission denied: recent kernels make "
                "it root-only); CPU package power is not measured here.")
    why = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return f"RAPL counter {path} could not be read ({why}); CPU package power is not measured here."
