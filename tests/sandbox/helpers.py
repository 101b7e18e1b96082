"""Shortcuts for driving the world the way the demo story does."""

from __future__ import annotations

from opsmith.sandbox.images import PushResult
from opsmith.sandbox.samples.apps import MY_APPLICATION_FIX_CONFIG, MY_APPLICATION_FIX_DOCKERFILE
from opsmith.sandbox.world import World


def build_and_push(world: World, app: str, tag: str) -> PushResult:
    build = world.builds.trigger(app=app, raise_on_failure=True)
    return world.registry.push(f"myorg/{app}", tag, build.number, "Dockerfile", None)


def fix_my_application(world: World) -> str:
    return world.commit_files(
        "my-application",
        {"config/production.json": MY_APPLICATION_FIX_CONFIG, "Dockerfile": MY_APPLICATION_FIX_DOCKERFILE},
        "fix: Add missing production config file",
    )


def change_service(world: World, app: str, note: str) -> str:
    """A harmless source change so the next build yields a new image."""
    return world.commit_file(app, "src/version.js", f"'use strict';\n\nmodule.exports = '{note}';\n", note)
