"""Sandbox image registry MCP server: 8 tools; images are built from build artifacts via their Dockerfile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from opsmith.sandbox.cli import ServerOptions, serve
from opsmith.sandbox.images import (
    DeleteResult,
    ImageMetadata,
    PullResult,
    PushResult,
    RepositoryList,
    TagList,
    TagResult,
    VerifyResult,
)
from opsmith.sandbox.serving import Caller, hints, reads
from opsmith.sandbox.world import World

ImageName = Annotated[
    str, Field(description="Image reference, e.g. myorg/my-application:v1.0.0 or repo@sha256:...")
]


def build_server(world: World, options: ServerOptions) -> MCPServer:
    mcp = MCPServer(
        name="registry",
        title="Image Registry",
        description="Sandbox container image registry; images are built from CI build artifacts",
        instructions="Repositories are myorg/<application>; tags are immutable.",
    )
    call = Caller(options)
    r = world.registry

    @mcp.tool(
        title="Push image",
        description="Build a container image from a build's artifacts following its Dockerfile, tag it, push "
        "it to the registry.",
        annotations=hints("Push image", idempotent=True),
    )
    async def push_image(
        image: Annotated[
            str, Field(description="Repository, optionally with tag, e.g. myorg/my-application")
        ],
        tag: Annotated[
            str | None, Field(description="Tag; defaults to the tag in image, else <version>-<short commit>")
        ] = None,
        build_number: Annotated[
            int | None, Field(description="CI build to package; defaults to the last successful build", ge=1)
        ] = None,
        dockerfile: Annotated[str, Field(description="Dockerfile path in the build")] = "Dockerfile",
        build_args: Annotated[dict[str, str] | None, Field(description="Docker build arguments")] = None,
    ) -> PushResult:
        return await call("push_image", r.push, image, tag, build_number, dockerfile, build_args)

    @mcp.tool(
        title="Pull image",
        description="Pull an image from the registry: its digest, config and layers.",
        annotations=reads("Pull image"),
    )
    async def pull_image(image: ImageName) -> PullResult:
        return await call("pull_image", r.pull, image)

    @mcp.tool(
        title="Tag image",
        description="Tag an existing image with a new tag (tags are immutable once set).",
        annotations=hints("Tag image", idempotent=True),
    )
    async def tag_image(
        image: ImageName,
        new_tag: Annotated[str, Field(description="The tag to add, e.g. v1.0.0-prod")],
        target_repository: Annotated[str | None, Field(description="Another repository to tag into")] = None,
    ) -> TagResult:
        return await call("tag_image", r.tag, image, new_tag, target_repository)

    @mcp.tool(
        title="Verify image",
        description="Verify an image exists, recompute its layer checksums and digest (integrity), and check "
        "that required files are present in its layers.",
        annotations=reads("Verify image"),
    )
    async def verify_image(
        image: ImageName,
        require_files: Annotated[
            list[str] | None,
            Field(description="Paths (relative to the image WORKDIR or absolute) that must exist"),
        ] = None,
        fail_on_missing: Annotated[
            bool, Field(description="Return an error if a required file is missing or integrity fails")
        ] = True,
    ) -> VerifyResult:
        return await call("verify_image", r.verify, image, require_files or [], fail_on_missing)

    @mcp.tool(
        title="Get image metadata",
        description="Get image metadata: tags, digest, size, source build, commit, config, layers, files.",
        annotations=reads("Get image metadata"),
    )
    async def get_image_metadata(image: ImageName) -> ImageMetadata:
        return await call("get_image_metadata", r.metadata, image)

    @mcp.tool(
        title="List images",
        description="List image repositories in the registry with tag counts and latest tag.",
        annotations=reads("List images"),
    )
    async def list_images(
        name_filter: Annotated[
            str | None, Field(description="Only repositories containing this text")
        ] = None,
    ) -> RepositoryList:
        return await call("list_images", r.list_repositories, name_filter)

    @mcp.tool(
        title="List tags",
        description="List the tags of an image repository with their digests.",
        annotations=reads("List tags"),
    )
    async def list_tags(
        repository: Annotated[str, Field(description="Repository, e.g. myorg/my-application")],
    ) -> TagList:
        return await call("list_tags", r.list_tags, repository)

    @mcp.tool(
        title="Delete image",
        description="Delete an image tag (or, by digest, the image and all its tags) from the registry.",
        annotations=hints("Delete image", destructive=True, idempotent=True),
    )
    async def delete_image(image: ImageName) -> DeleteResult:
        return await call("delete_image", r.delete, image)

    return mcp


def main(argv: Sequence[str] | None = None) -> None:
    serve("registry", build_server, argv)


if __name__ == "__main__":
    main()
