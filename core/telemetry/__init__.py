"""Telemetry: power and resource sampling, and what each request cost.

``TelemetrySampler`` samples power (NVML, RAPL, or a labelled estimate) and the worker's
RSS/CPU in a background thread; ``accounting_for`` turns a finished request's metrics and
the samples over its window into a time breakdown, energy and cost; ``SessionLedger`` adds
requests up and writes them as CSV. No Qt here: the panel in ``app/`` polls these.
"""

from core.telemetry.accounting import (
    CostSettings,
    RequestAccounting,
    account,
    accounting_for,
    breakdown,
    integrate_energy,
)
from core.telemetry.ledger import SessionLedger
from core.telemetry.power.base import PowerSetup, PowerSource, SourceUnavailable
from core.telemetry.power.detect import detect_power
from core.telemetry.sampler import Sample, TelemetrySampler

__all__ = [
    "CostSettings",
    "PowerSetup",
    "PowerSource",
    "RequestAccounting",
    "Sample",
    "SessionLedger",
    "SourceUnavailable",
    "TelemetrySampler",
    "account",
    "accounting_for",
    "breakdown",
    "detect_power",
    "integrate_energy",
]
