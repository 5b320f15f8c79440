"""The Dagster component of a deployment: one `EmergencySettingsComponent` per Telnyx account."""

from emergency_pipeline.component.component import EmergencySettingsComponent

__all__ = ["EmergencySettingsComponent"]
