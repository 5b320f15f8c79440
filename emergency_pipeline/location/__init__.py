"""The code location's defs folder: one folder per Telnyx account under accounts/, each with
the defs.yaml of an EmergencySettingsComponent (`dg scaffold defs
emergency_pipeline.EmergencySettingsComponent accounts/<name>` adds one)."""
