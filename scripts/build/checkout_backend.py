"""CareGraph's build backend: setuptools, for editable installs only.

CareGraph deploys from its checkout (`pip install -e .`, what ./scripts/serve does) or
from the container image built from the checkout. A wheel would carry the Python
packages but not what they read beside them at run time (queries/, static/graphiql/,
web/graphiql.html, migrations' alembic files), and top-level packages named `schema`,
`auth` or `datasources` would shadow other distributions in a shared site-packages: so
no wheel or sdist is offered, and building one fails with this explanation.
"""

from __future__ import annotations

from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401 - the PEP 517/660 hooks pip calls
    build_editable,
    get_requires_for_build_editable,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

REFUSAL = (
    "CareGraph is not distributed as a wheel or sdist: it deploys from its checkout "
    "(pip install -e .) or from the container image. See README.md, 'Deploying'."
)


def build_wheel(*args: Any, **kwargs: Any) -> str:
    raise RuntimeError(REFUSAL)


def build_sdist(*args: Any, **kwargs: Any) -> str:
    raise RuntimeError(REFUSAL)


def get_requires_for_build_sdist(*args: Any, **kwargs: Any) -> list[str]:
    return list(_setuptools.get_requires_for_build_sdist(*args, **kwargs))
