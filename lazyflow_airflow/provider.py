"""Airflow provider metadata for lazyflow.

Airflow discovers providers through the ``apache_airflow_provider`` entry point, which
pyproject.toml points at `get_provider_info`. The returned dict follows Airflow's
``provider_info.schema.json``; Airflow checks that ``package-name`` equals the
distribution name, so it must stay ``"lazyflow"``.

This module must stay cheap to import: Airflow calls it for every CLI command and every
DAG-processor start, so it imports neither Airflow nor the lazyflow engine.
"""

from __future__ import annotations

from typing import Any

from lazyflow_airflow._version import __version__

# Labels of the connection form in the Airflow UI (also LazyFlowHook.get_ui_field_behaviour).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": [],
    "relabeling": {"schema": "Database", "host": "Host (or full store URL)"},
    "placeholders": {
        "host": "db.internal, or postgresql+psycopg://user@db.internal:5432/lazyflow",
        "schema": "lazyflow",
        "port": "5432",
        "login": "lazyflow",
        "extra": '{"db": "sqlite:////data/lazyflow.db"} or {"dialect": "postgresql+psycopg"}; '
        'add "signing_key" to sign stored values',
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the lazyflow provider to Airflow's ProvidersManager."""
    return {
        "package-name": "lazyflow",
        "name": "lazyflow",
        "description": (
            "Run whole dynamic lazyflow workflows as one Airflow task, with call-level "
            "caching, retries that re-run only failed calls, and provenance."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "lazyflow",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "lazyflow",
                "python-modules": ["lazyflow_airflow.operator"],
            }
        ],
        "hooks": [
            {
                "integration-name": "lazyflow",
                "python-modules": ["lazyflow_airflow.hooks"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "lazyflow",
                "hook-class-name": "lazyflow_airflow.hooks.LazyFlowHook",
                "hook-name": "lazyflow store",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "task-decorators": [
            {
                "name": "lazyflow",
                "class-name": "lazyflow_airflow.decorator.lazyflow_task",
            }
        ],
        "extra-links": ["lazyflow_airflow.links.LazyFlowExecutionLink"],
        "config": {
            "lazyflow": {
                "description": "Options of the lazyflow provider.",
                "options": {
                    "ui_url": {
                        "description": (
                            "Base URL of a 'lazyflow ui' serving the store. When set (or "
                            "when the connection's extra or the project's lazyflow.toml "
                            "[ui] url sets one), the 'lazyflow run' extra link opens the "
                            "execution's page there: <ui_url>/executions/<execution_id>."
                        ),
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "http://lazyflow-ui.internal:8765",
                        "default": "",
                    },
                    "viz_base_url": {
                        "description": (
                            "Base URL of the published lazyflow HTML call-graph views. "
                            "When set, LazyFlowOperator tasks get a 'lazyflow run' extra "
                            "link. A URL containing '{execution_id}' is used as a "
                            "template; otherwise '/<execution_id>.html' is appended."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://lazyflow.example.com/runs",
                        "default": "",
                    },
                    "viz_dir": {
                        "description": (
                            "Folder (local path or fsspec URL) where LazyFlowOperator writes "
                            "each execution's HTML call graph as '<execution_id>.html'. "
                            "Serve it at viz_base_url to make the extra link work."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/lazyflow-runs",
                        "default": "",
                    },
                    "conn_id": {
                        "description": (
                            "Default Airflow connection (type 'lazyflow') that supplies the "
                            "store URL when an operator is given neither db= nor conn_id=."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "lazyflow_default",
                        "default": "lazyflow_default",
                    },
                },
            }
        },
    }
