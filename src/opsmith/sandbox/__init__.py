"""Bundled sandbox MCP servers (Jenkins, SonarQube, image registry, Kubernetes) over one shared world."""

SERVERS: dict[str, str] = {
    "jenkins": "opsmith.sandbox.jenkins",
    "sonarqube": "opsmith.sandbox.sonarqube",
    "registry": "opsmith.sandbox.registry",
    "kubernetes": "opsmith.sandbox.kubernetes",
}

__all__ = ["SERVERS"]
