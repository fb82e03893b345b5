"""Sandbox Hub: a local emulator of the Hugging Face Hub API for Spaces (docstring completed below)."""

from infra.sandbox.faults import FaultRule
from infra.sandbox.server import Sandbox, run_sandbox

__all__ = ["FaultRule", "Sandbox", "run_sandbox"]
