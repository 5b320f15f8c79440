"""The steps of a run, one module per asset, each called with the run's RunContext
(context.py): the Dagster assets in defs/ only build that context, call their step, and turn
its result into metadata."""
