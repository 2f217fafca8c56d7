"""The templates of generated code (`*.j2` here: skeletons with holes, naming no op) and the Jinja
environment that renders them. Code generators fill them; the C toolchain renders its thread pool."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a missing hole is a bug in codegen, not an empty string
    )


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
