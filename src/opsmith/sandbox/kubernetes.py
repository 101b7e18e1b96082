"""Sandbox Kubernetes MCP server: 12 tools over deployments whose pods really start their images."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Annotated, cast

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from opsmith.sandbox.cli import ServerOptions, serve
from opsmith.sandbox.cluster import (
    STARTING,
    BackupResult,
    Color,
    DeleteResult,
    DeploymentView,
    LogsView,
    PodList,
    RolloutResult,
    ScaleResult,
    ServiceView,
    Strategy,
    TrafficResult,
)
from opsmith.sandbox.errors import RolloutFailed
from opsmith.sandbox.serving import Caller, hints, reads
from opsmith.sandbox.world import World

Namespace = Annotated[str, Field(description="Namespace: production, staging or development")]
Deployment = Annotated[str, Field(description="Deployment name (= application name), e.g. my-application")]
Image = Annotated[str, Field(description="Image in the registry, e.g. myorg/my-application:v1.0.0")]
WaitSeconds = Annotated[
    int,
    Field(
        description="Wait up to this many seconds for pods that are still starting (ContainerCreating) "
        "to run or fail before answering, as `kubectl wait` does; 0 answers at once",
        ge=0,
        le=600,
    ),
]


def failed_result(failed: RolloutFailed) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=str(failed))],
        structured_content=failed.result.model_dump(mode="json"),
        is_error=True,
    )


def _settled(pods: PodList) -> bool:
    return all(p.status != STARTING for p in pods.pods)


def _logs_settled(logs: LogsView) -> bool:
    return all(p.status != STARTING for p in logs.pods)


def build_server(world: World, options: ServerOptions) -> MCPServer:
    mcp = MCPServer(
        name="kubernetes",
        title="Kubernetes",
        description="Sandbox Kubernetes: deployments, pods, services, rollbacks, canaries, blue-green",
        instructions="Deployments are named after applications; services are <deployment>-service. "
        "Every pod gets APP_ENV set to its namespace.",
    )
    call = Caller(options)
    c = world.cluster

    background = options.pod_start_seconds > 0
    apply_description = (
        "Deploy an image: create or update a deployment with a rolling update (new revision and "
        "replica set) or to the idle blue-green colour; "
        + (
            "returns at once while the new pods start (check them with get_pods)."
            if background
            else "fails if the new pods do not become ready."
        )
    )

    @mcp.tool(
        title="Apply deployment",
        description=apply_description,
        annotations=hints("Apply deployment", destructive=True, idempotent=True),
    )
    async def apply_deployment(
        deployment_name: Deployment,
        namespace: Namespace,
        image: Image,
        replicas: Annotated[
            int | None, Field(description="Desired pods; omit to keep the current count", ge=0, le=50)
        ] = None,
        strategy: Annotated[Strategy, Field(description="RollingUpdate or BlueGreen")] = "RollingUpdate",
        max_surge: Annotated[int, Field(description="Extra pods allowed during a rolling update", ge=0)] = 1,
        max_unavailable: Annotated[
            int, Field(description="Pods that may be unavailable during the update", ge=0)
        ] = 0,
    ) -> RolloutResult:
        try:
            return await call(
                "apply_deployment",
                c.apply,
                namespace,
                deployment_name,
                image,
                replicas,
                strategy,
                max_surge,
                max_unavailable,
                start_delay=options.pod_start_seconds,
            )
        except RolloutFailed as failed:
            # An error result that still says what changed (revision, previous revision), so the
            # caller can undo exactly this rollout. MCPServer passes a CallToolResult through as is;
            # the cast keeps the declared output schema RolloutResult.
            return cast(RolloutResult, failed_result(failed))

    @mcp.tool(
        title="Get deployment",
        description="Get a deployment's spec, status, replica sets and revision history.",
        annotations=reads("Get deployment"),
    )
    async def get_deployment(deployment_name: Deployment, namespace: Namespace) -> DeploymentView:
        return await call("get_deployment", c.deployment, namespace, deployment_name)

    @mcp.tool(
        title="Get pods",
        description="List pods with status (Running, CrashLoopBackOff...), readiness, restarts and image.",
        annotations=reads("Get pods"),
    )
    async def get_pods(
        namespace: Namespace,
        label_selector: Annotated[
            str | None, Field(description="e.g. app=my-application,track=canary")
        ] = None,
        field_selector: Annotated[str | None, Field(description="e.g. status.phase=Running")] = None,
        wait_seconds: WaitSeconds = 0,
    ) -> PodList:
        read = functools.partial(c.pods, namespace, label_selector, field_selector)
        return await call.until("get_pods", read, _settled, within=wait_seconds)

    @mcp.tool(
        title="Get pod logs",
        description="Get container logs of a pod or of the pods matching a label selector, with error lines.",
        annotations=reads("Get pod logs"),
    )
    async def get_pod_logs(
        namespace: Namespace,
        pod_name: Annotated[str | None, Field(description="One pod's name")] = None,
        label_selector: Annotated[
            str | None, Field(description="Pods matching e.g. app=my-application")
        ] = None,
        tail_lines: Annotated[int, Field(description="Last N lines per pod", ge=0, le=5000)] = 100,
        wait_seconds: WaitSeconds = 0,
    ) -> LogsView:
        read = functools.partial(c.logs, namespace, pod_name, label_selector, tail_lines)
        return await call.until("get_pod_logs", read, _logs_settled, within=wait_seconds)

    @mcp.tool(
        title="Scale deployment",
        description="Scale a deployment to a number of replicas (pods are created or removed).",
        annotations=hints("Scale deployment", destructive=True, idempotent=True),
    )
    async def scale_deployment(
        deployment_name: Deployment,
        namespace: Namespace,
        replicas: Annotated[int, Field(description="Desired number of pods", ge=0, le=50)],
    ) -> ScaleResult:
        return await call("scale_deployment", c.scale, namespace, deployment_name, replicas)

    @mcp.tool(
        title="Rollback deployment",
        description="Rollback a deployment to the previous revision, a given revision or a backup; aborts an "
        "active canary so the stable revision takes all traffic.",
        annotations=hints("Rollback deployment", destructive=True),
    )
    async def rollback_deployment(
        deployment_name: Deployment,
        namespace: Namespace,
        to_revision: Annotated[
            int | None, Field(description="Revision number; omit for the previous", ge=1)
        ] = None,
        to_backup: Annotated[str | None, Field(description="Backup id from backup_deployment")] = None,
    ) -> RolloutResult:
        return await call(
            "rollback_deployment", c.rollback, namespace, deployment_name, to_revision, to_backup
        )

    @mcp.tool(
        title="Delete deployment",
        description="Delete a deployment with its replica sets and pods (the service is kept).",
        annotations=hints("Delete deployment", destructive=True, idempotent=True),
    )
    async def delete_deployment(deployment_name: Deployment, namespace: Namespace) -> DeleteResult:
        return await call("delete_deployment", c.delete, namespace, deployment_name)

    @mcp.tool(
        title="Get service",
        description="Get a service's ports, selector, ready endpoints, traffic split or active colour.",
        annotations=reads("Get service"),
    )
    async def get_service(
        service_name: Annotated[
            str, Field(description="e.g. my-application-service (or the deployment name)")
        ],
        namespace: Namespace,
    ) -> ServiceView:
        return await call("get_service", c.service, namespace, service_name)

    @mcp.tool(
        title="Backup deployment",
        description="Backup a deployment: snapshot its running revision, image and service spec for restore.",
        annotations=hints("Backup deployment"),
    )
    async def backup_deployment(deployment_name: Deployment, namespace: Namespace) -> BackupResult:
        return await call("backup_deployment", c.backup, namespace, deployment_name)

    @mcp.tool(
        title="Canary deploy",
        description="Deploy an image as a canary that receives a percentage of traffic next to the stable "
        "revision; fails if the canary pods do not become ready or do not answer the traffic they get.",
        annotations=hints("Canary deploy", destructive=True, idempotent=True),
    )
    async def canary_deploy(
        deployment_name: Deployment,
        namespace: Namespace,
        image: Image,
        weight: Annotated[int, Field(description="Percent of traffic for the canary", ge=1, le=99)] = 10,
    ) -> RolloutResult:
        return await call("canary_deploy", c.canary, namespace, deployment_name, image, weight)

    @mcp.tool(
        title="Promote canary",
        description="Promote the canary to 100% of traffic; it becomes the stable revision.",
        annotations=hints("Promote canary", destructive=True, idempotent=True),
    )
    async def promote_canary(deployment_name: Deployment, namespace: Namespace) -> RolloutResult:
        return await call("promote_canary", c.promote, namespace, deployment_name)

    @mcp.tool(
        title="Switch traffic",
        description="Switch blue-green traffic to the other (or a named) colour; fails and keeps the current "
        "colour if the target's pods are not ready, and fails after switching if they do not answer it.",
        annotations=hints("Switch traffic", destructive=True),
    )
    async def switch_traffic(
        deployment_name: Deployment,
        namespace: Namespace,
        color: Annotated[
            Color | None, Field(description="blue or green; omit to switch to the other")
        ] = None,
    ) -> TrafficResult:
        return await call("switch_traffic", c.switch_traffic, namespace, deployment_name, color)

    return mcp


def main(argv: Sequence[str] | None = None) -> None:
    serve("kubernetes", build_server, argv)


if __name__ == "__main__":
    main()
