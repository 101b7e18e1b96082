"""Builds the initial world through the same code paths the tools use.

Every sample app's released commits are built, pushed and rolled out to each namespace, so the
running images, revision histories and registry tags are all real results, not fixtures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opsmith.sandbox.cluster import NAMESPACES
from opsmith.sandbox.images import ORG
from opsmith.sandbox.samples.apps import SAMPLE_APPS

if TYPE_CHECKING:
    from opsmith.sandbox.world import World

EPOCH = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def seed_world(world: World) -> None:
    with world.db.tx(write=True) as conn:
        world.quality.seed_gates(conn)
        world.cluster.seed_namespaces(conn)
    moment = EPOCH
    for index, app in enumerate(SAMPLE_APPS.values()):
        world.repos.init(app.name)
        for number, commit in enumerate(app.commits):
            moment = EPOCH + timedelta(days=index, hours=number)
            sha = world.repos.commit(app.name, commit.files, commit.message, date=moment)
            if commit.release is None:
                continue
            world.repos.tag(app.name, commit.release, sha)
            with world.frozen_clock(moment + timedelta(minutes=5)):
                build = world.builds.trigger(app=app.name, commit=sha, parameters={"release": commit.release})
            with world.frozen_clock(moment + timedelta(minutes=10)):
                pushed = world.registry.push(
                    f"{ORG}/{app.name}", commit.release, build.number, "Dockerfile", None
                )
            with world.frozen_clock(moment + timedelta(minutes=15)):
                for namespace in NAMESPACES:
                    world.cluster.apply(
                        namespace,
                        app.name,
                        pushed.image,
                        app.replicas.get(namespace, 1),
                        "RollingUpdate",
                        1,
                        0,
                    )
