"""What every samplediff node shares: the category, the report shown on the node, and the rule
that an analysis failure becomes text instead of an exception."""

from __future__ import annotations

import os
import traceback

CATEGORY = "samplediff"

# The key the frontend extension (web/js/samplediff.js) reads from a node's "ui" output.
UI_KEY = "samplediff_report"


def ui(text: str) -> dict:
    return {UI_KEY: [text]}


def failure_text(what: str, e: BaseException) -> str:
    """One readable paragraph for a failed analysis (the workflow goes on)."""
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
    return f"samplediff: {what} failed: {type(e).__name__}: {e}{where}\nThe workflow's outputs were not affected."


def output_dir() -> str:
    import folder_paths  # ComfyUI's

    return folder_paths.get_output_directory()


def resolve_path(path: str) -> str:
    """A trace path as typed on a node: absolute, or relative to ComfyUI's output folder."""
    path = os.path.expanduser(path.strip().strip('"'))
    return path if os.path.isabs(path) else os.path.join(output_dir(), path)
