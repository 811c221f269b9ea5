"""Templates: one jinja2 environment (StrictUndefined), filters that quote, one place to find them.

Every value that lands in a shell script goes through `shquote`; every value that lands in YAML
goes through `yamlstr` (a JSON string, which YAML reads back as the same string: IPv6 literals
and "[v6]:port" endpoints stay strings).
"""

from __future__ import annotations

import json
import os
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATES_ENV = "V6KUBE_TEMPLATES"


def templates_dir() -> Path:
    """$V6KUBE_TEMPLATES, else the copy installed inside the package, else the repo's templates/."""
    override = os.environ.get(TEMPLATES_ENV)
    if override:
        return Path(override)
    installed = Path(__file__).resolve().parent / "templates"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "templates"


def shquote(value: Any) -> str:
    return shlex.quote(str(value))


def yamlstr(value: Any) -> str:
    return json.dumps(str(value))


@lru_cache(maxsize=None)
def _environment(root: str):
    import jinja2  # not on --help's import path

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shquote
    env.filters["yamlstr"] = yamlstr
    return env


def render(name: str, **context: Any) -> str:
    """Render templates/<name> with `context`; an undefined variable is an error, not an empty string."""
    return _environment(str(templates_dir())).get_template(name).render(**context)
