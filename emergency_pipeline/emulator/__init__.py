"""A local emulator of the Telnyx endpoints the pipeline uses (a real HTTP server)."""

from emergency_pipeline.emulator.faults import Faults
from emergency_pipeline.emulator.handle import DEV_API_KEY, Emulator

__all__ = ["DEV_API_KEY", "Emulator", "Faults"]
