"""The console logger of `emergency-pipeline run`: Dagster's lines without the tracebacks.

Dagster's own console logger prints a failed step's whole stack (80-120 lines) at level
ERROR; the CLI prints the one-line cause itself (one_line_errors.py), so here an event keeps
only its first line unless the level is DEBUG. Same config as Dagster's `console` logger
(log_level).
"""

import logging
import sys

from dagster import Field, logger


class _FirstLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.split("\n", 1)[0]


@logger(
    {"log_level": Field(str, is_required=False, default_value="INFO"),
     "name": Field(str, is_required=False, default_value="dagster")},
    description="Console lines without tracebacks (all of them at DEBUG).",
)
def cli_console(init_context) -> logging.Logger:
    level = logging.getLevelName(init_context.logger_config["log_level"].upper())
    log = logging.Logger(init_context.logger_config["name"], level=level)
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s - %(levelname)s - %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if level <= logging.DEBUG else _FirstLine(fmt))
    log.addHandler(handler)
    return log
