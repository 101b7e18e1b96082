"""Every secret value the configuration can resolve, so any text opsmith keeps or shows can be
redacted of them: one list for explain, notifications, issues and the agents, so that a secret added
to the configuration is hidden everywhere at once, not only where someone remembered it."""

from __future__ import annotations

from opsmith.bootstrap import App
from opsmith.config import referenced_variables


def secret_values(app: App) -> list[str]:
    """What the `${VAR}` references of the MCP servers, the notification channels, the GitHub
    issues token and the GitHub webhook secret resolve to in the environment (those set)."""
    config = app.config
    templates = [spec.model_dump_json() for spec in config.mcp_servers.values()]
    if config.webhooks.github is not None:
        templates.append(config.webhooks.github.secret)
    names = [name for template in templates for name in referenced_variables(template)]
    found = [app.environ[name] for name in dict.fromkeys(names) if app.environ.get(name)]
    found += config.notifications.secret_values(app.environ)
    if config.issues.github is not None:
        found += config.issues.github.secret_values(app.environ)
    return list(dict.fromkeys(found))
