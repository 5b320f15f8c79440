"""The Dagster side of the pipeline: resources, assets, checks, schedules and sensors."""
