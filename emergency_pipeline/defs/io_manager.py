"""The IO manager: each step hands the next a small StageRef, kept per run, never per partition.

Dagster's default IO manager keys asset values by asset and partition, so two runs of one
source overwrote each other's values and one could apply the other's plan. Here the value is
stored under the run that produced it (`<state dir>/runs/<run_id>/refs/<asset>.json`) and
loaded from the run Dagster names as its producer (`upstream_output.run_id`: this run, or
the parent run of a re-execution), so a run can only ever read its own lineage's data.
"""

import json
from pathlib import Path

from dagster import ConfigurableIOManager, InputContext, OutputContext

from emergency_pipeline.stage_files import StageRef


class RunScopedIOManager(ConfigurableIOManager):
    directory: str

    def _path(self, run_id: str, context: OutputContext | InputContext) -> Path:
        name = "__".join(context.asset_key.path) if context.has_asset_key else context.name
        return Path(self.directory) / "runs" / run_id / "refs" / f"{name}.json"

    def handle_output(self, context: OutputContext, obj: StageRef) -> None:
        if not isinstance(obj, StageRef):
            raise TypeError(f"{context.name}: assets hand over a StageRef, not {type(obj)}")
        path = self._path(context.run_id, context)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(obj.to_json()))
        tmp.replace(path)   # a half-written ref is never read

    def load_input(self, context: InputContext) -> StageRef:
        upstream = context.upstream_output
        path = self._path(upstream.run_id, upstream)
        if not path.exists():
            raise FileNotFoundError(
                f"{context.name}: no output of run {upstream.run_id} at {path}; run the "
                "whole job (or re-execute from the step that makes it)")
        return StageRef.from_json(json.loads(path.read_text()))
