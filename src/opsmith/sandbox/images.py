"""The image registry: images built from build artifacts by following their Dockerfile."""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from opsmith.sandbox.common import digest_of, resolve_spec, sha256_hex
from opsmith.sandbox.errors import SandboxError

if TYPE_CHECKING:
    import sqlite3

    from opsmith.sandbox.world import World

ORG = "myorg"
# Base images the sandbox knows: a nominal size and whether they ship a node binary.
BASE_IMAGES: dict[str, tuple[int, bool]] = {
    "node:18-alpine": (47_000_000, True),
    "node:20-alpine": (49_000_000, True),
    "node:18": (380_000_000, True),
    "node:20": (390_000_000, True),
    "alpine:3.19": (7_400_000, False),
}
NODE_BINARY = "/usr/local/bin/node"


class LayerFile(BaseModel):
    path: str
    sha256: str
    size: int


class Layer(BaseModel):
    index: int
    digest: str
    instruction: str
    files: list[LayerFile]
    size: int


class LayerSummary(BaseModel):
    index: int
    digest: str
    instruction: str
    file_count: int
    size: int


class ImageConfig(BaseModel):
    base_image: str
    workdir: str
    cmd: list[str]
    entrypoint: list[str]
    env: dict[str, str]
    exposed_ports: list[int]


class ImageRecord(BaseModel):
    repository: str
    digest: str
    app: str
    job: str | None
    build_number: int | None
    commit_sha: str
    version: str | None
    dockerfile: str
    config: ImageConfig
    layers: list[Layer]
    size: int
    created_at: str
    build_log: list[str]


class ImageRef(BaseModel):
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag or 'latest'}"


class PushResult(BaseModel):
    image: str
    repository: str
    tag: str
    digest: str
    size_bytes: int
    size: str
    already_present: bool = Field(description="True when this tag already held exactly this content")
    source_job: str | None
    source_build: int | None
    commit_sha: str
    layers: list[LayerSummary]
    build_steps: list[str]


class PullResult(BaseModel):
    image: str
    digest: str
    size_bytes: int
    config: ImageConfig
    layers: list[LayerSummary]


class RequiredFile(BaseModel):
    path: str
    present: bool
    layer: int | None
    layer_instruction: str | None


class VerifyResult(BaseModel):
    image: str
    exists: bool
    digest: str
    recomputed_digest: str
    integrity: str = Field(description="'valid' when every file checksum and the digest recompute")
    layer_count: int
    file_count: int
    required_files: list[RequiredFile]
    missing_files: list[str]
    verified: bool


class ImageMetadata(BaseModel):
    image: str
    repository: str
    digest: str
    tags: list[str]
    app: str
    version: str | None
    source_job: str | None
    source_build: int | None
    commit_sha: str
    dockerfile: str
    created_at: str
    size_bytes: int
    size: str
    config: ImageConfig
    layers: list[LayerSummary]
    files: list[str]


class TagResult(BaseModel):
    source: str
    target: str
    digest: str
    created: bool


class TagInfo(BaseModel):
    tag: str
    digest: str
    created_at: str


class TagList(BaseModel):
    repository: str
    tags: list[TagInfo]


class RepositoryInfo(BaseModel):
    repository: str
    tag_count: int
    image_count: int
    latest_tag: str | None


class RepositoryList(BaseModel):
    repositories: list[RepositoryInfo]


class DeleteResult(BaseModel):
    image: str
    digest: str
    deleted_tags: list[str]
    manifest_deleted: bool
    in_use_by: list[str] = Field(description="Deployments whose revisions reference this image")


def human_size(size: int) -> str:
    return f"{size / 1_000_000:.1f}MB"


def parse_ref(text: str) -> ImageRef:
    ref = text.strip().removeprefix("docker.io/")
    if not ref or any(c.isspace() for c in ref):
        raise SandboxError(f"invalid image reference {text!r}; expected e.g. {ORG}/my-application:v1.0.0")
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise SandboxError(f"invalid digest in {text!r}")
    tag = None
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    if "/" not in ref:
        ref = f"{ORG}/{ref}"
    return ImageRef(repository=ref.lower(), tag=tag, digest=digest)


def summarise(layers: list[Layer]) -> list[LayerSummary]:
    return [
        LayerSummary(
            index=layer.index,
            digest=layer.digest,
            instruction=layer.instruction,
            file_count=len(layer.files),
            size=layer.size,
        )
        for layer in layers
    ]


def layer_digest(instruction: str, files: list[LayerFile]) -> str:
    return digest_of({"instruction": instruction, "files": [[f.path, f.sha256, f.size] for f in files]})


def manifest_digest(config: ImageConfig, layers: list[Layer]) -> str:
    return digest_of({"config": config.model_dump(), "layers": [layer.digest for layer in layers]})


def _instructions(text: str) -> list[tuple[str, str]]:
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    result = []
    for line in joined:
        parts = line.strip().split(None, 1)
        result.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return result


def _words(args: str) -> list[str]:
    stripped = args.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
            if isinstance(value, list):
                return [str(v) for v in value]
        except ValueError:
            pass
    return shlex.split(stripped)


def _ignored(path: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pat = pattern.strip().rstrip("/")
        if not pat or pat.startswith("#"):
            continue
        if fnmatch.fnmatch(path, pat) or path == pat or path.startswith(pat + "/"):
            return True
    return False


class DockerBuild:
    """Executes a Dockerfile against a build context (path -> bytes), producing layers."""

    def __init__(self, context: dict[str, bytes], build_args: dict[str, str]) -> None:
        ignore = context.get(".dockerignore", b"").decode("utf-8", errors="replace").splitlines()
        self.context = {p: c for p, c in context.items() if not _ignored(p, ignore)}
        self.args = dict(build_args)
        self.fs: dict[str, bytes] = {}
        self.layers: list[Layer] = []
        self.blobs: dict[str, bytes] = {}
        self.steps: list[str] = []
        self.config = ImageConfig(base_image="", workdir="/", cmd=[], entrypoint=[], env={}, exposed_ports=[])

    def _expand(self, text: str) -> str:
        values = {**self.args, **self.config.env}
        return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), text)

    def _add_layer(self, instruction: str, files: dict[str, bytes], base_size: int = 0) -> None:
        entries = []
        for path, content in sorted(files.items()):
            sha = sha256_hex(content)
            self.blobs[sha] = content
            self.fs[path] = content
            entries.append(LayerFile(path=path, sha256=sha, size=len(content)))
        size = base_size + sum(e.size for e in entries)
        self.layers.append(
            Layer(
                index=len(self.layers),
                digest=layer_digest(instruction, entries),
                instruction=instruction,
                files=entries,
                size=size,
            )
        )

    def run(self, dockerfile: str, text: str) -> None:
        instructions = _instructions(text)
        if not instructions or instructions[0][0] not in ("FROM", "ARG"):
            raise SandboxError(f"{dockerfile}: the first instruction must be FROM")
        total = len(instructions)
        for number, (op, raw_args) in enumerate(instructions, start=1):
            args = self._expand(raw_args) if op != "ARG" else raw_args
            self.steps.append(f"Step {number}/{total} : {op} {args}")
            handler = getattr(self, f"_op_{op.lower()}", None)
            if handler is None:
                self.steps.append(f" ---> {op} recorded in image config")
                continue
            handler(args)
        if not self.layers:
            raise SandboxError(f"{dockerfile} has no FROM instruction")

    def _op_arg(self, args: str) -> None:
        name, _, default = args.partition("=")
        self.args.setdefault(name.strip(), default.strip())

    def _op_from(self, args: str) -> None:
        base = args.split()[0]
        size, has_node = BASE_IMAGES.get(base, (50_000_000, False))
        files = {NODE_BINARY: f"node runtime from {base}\n".encode()} if has_node else {}
        self.config.base_image = base
        self._add_layer(f"FROM {base}", files, base_size=size)
        self.steps.append(f" ---> base layer {self.layers[-1].digest[:19]}")

    def _op_workdir(self, args: str) -> None:
        self.config.workdir = posixpath.normpath(posixpath.join(self.config.workdir, args.strip()))

    def _op_env(self, args: str) -> None:
        if "=" in args:
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                self.config.env[key] = value
        else:
            key, _, value = args.partition(" ")
            self.config.env[key.strip()] = value.strip()

    def _op_expose(self, args: str) -> None:
        for word in args.split():
            self.config.exposed_ports.append(int(word.split("/")[0]))

    def _op_cmd(self, args: str) -> None:
        self.config.cmd = _words(args)

    def _op_entrypoint(self, args: str) -> None:
        self.config.entrypoint = _words(args)

    def _target(self, dest: str) -> str:
        return posixpath.normpath(posixpath.join(self.config.workdir, dest))

    def _op_copy(self, args: str) -> None:
        words = [w for w in _words(args) if not w.startswith("--")]
        if len(words) < 2:
            raise SandboxError(f"COPY needs a source and a destination: COPY {args}")
        sources, dest = words[:-1], words[-1]
        dest_is_dir = dest.endswith("/") or len(sources) > 1
        files: dict[str, bytes] = {}
        for source in sources:
            src = posixpath.normpath(source).lstrip("/")
            src = "" if src == "." else src
            if src == "":
                matched = {p: p for p in self.context}
                dest_is_dir = True
            elif any(c in src for c in "*?["):
                matched = {p: posixpath.basename(p) for p in self.context if fnmatch.fnmatch(p, src)}
                dest_is_dir = True
            elif src in self.context:
                matched = {src: posixpath.basename(src)}
            else:
                prefix = src.rstrip("/") + "/"
                matched = {p: p[len(prefix) :] for p in self.context if p.startswith(prefix)}
                dest_is_dir = True
            if not matched:
                raise SandboxError(
                    f"COPY failed: file not found in build context or excluded by .dockerignore: "
                    f"stat {source}: file does not exist"
                )
            for path, rel in matched.items():
                target = self._target(posixpath.join(dest, rel)) if dest_is_dir else self._target(dest)
                files[target] = self.context[path]
        self._add_layer(f"COPY {args}", files)
        self.steps.append(f" ---> {len(files)} files, {sum(len(c) for c in files.values())} bytes")

    def _op_run(self, args: str) -> None:
        words = args.split()
        files: dict[str, bytes] = {}
        if len(words) >= 2 and words[0] == "npm" and words[1] in ("ci", "install", "i"):
            manifest = self._target("package.json")
            if manifest not in self.fs:
                raise SandboxError(f"RUN {args} failed: npm ERR! enoent Could not read {manifest}")
            package = json.loads(self.fs[manifest])
            omit_dev = (
                "--omit=dev" in words
                or "--production" in words
                or self.config.env.get("NODE_ENV") == "production"
            )
            deps = dict(package.get("dependencies") or {})
            if not omit_dev:
                deps.update(package.get("devDependencies") or {})
            for name, spec in sorted(deps.items()):
                version = resolve_spec(str(spec))
                body = json.dumps({"name": name, "version": version}, sort_keys=True).encode()
                files[self._target(f"node_modules/{name}/package.json")] = body
            self.steps.append(f" ---> added {len(deps)} packages")
        self._add_layer(f"RUN {args}", files)


class RegistryService:
    def __init__(self, world: World) -> None:
        self.world = world

    # --- lookups shared with the cluster ---------------------------------------------------------

    def resolve(self, conn: sqlite3.Connection, text: str) -> tuple[ImageRef, ImageRecord]:
        ref = parse_ref(text)
        digest = ref.digest
        if digest is None:
            tag = ref.tag or "latest"
            row = conn.execute(
                "SELECT digest FROM tags WHERE repository=? AND tag=?", (ref.repository, tag)
            ).fetchone()
            if row is None:
                tags = [
                    r[0]
                    for r in conn.execute(
                        "SELECT tag FROM tags WHERE repository=? ORDER BY tag", (ref.repository,)
                    )
                ]
                if not tags:
                    repos = [r[0] for r in conn.execute("SELECT DISTINCT repository FROM tags ORDER BY 1")]
                    raise SandboxError(
                        f"repository {ref.repository} not found; repositories: {', '.join(repos)}"
                    )
                raise SandboxError(
                    f"image {ref.repository}:{tag} not found; tags: {', '.join(tags)} "
                    "(push_image creates new tags)"
                )
            digest = row["digest"]
        record = self.record(conn, ref.repository, digest)
        if record is None:
            raise SandboxError(f"image {ref.repository}@{digest} not found in the registry")
        return ref, record

    def record(self, conn: sqlite3.Connection, repository: str, digest: str) -> ImageRecord | None:
        row = conn.execute(
            "SELECT doc FROM images WHERE repository=? AND digest=?", (repository, digest)
        ).fetchone()
        return ImageRecord.model_validate_json(row["doc"]) if row else None

    def filesystem(self, conn: sqlite3.Connection, record: ImageRecord) -> dict[str, bytes]:
        """The image's merged file tree, later layers overriding earlier ones."""
        files: dict[str, bytes] = {}
        for layer in record.layers:
            for entry in layer.files:
                files[entry.path] = self.world.get_blob(conn, entry.sha256)
        return files

    def _tags_for(self, conn: sqlite3.Connection, repository: str, digest: str) -> list[str]:
        rows = conn.execute(
            "SELECT tag FROM tags WHERE repository=? AND digest=? ORDER BY tag", (repository, digest)
        )
        return [r[0] for r in rows]

    # --- operations -----------------------------------------------------------------------------

    def push(
        self,
        image: str,
        tag: str | None,
        build_number: int | None,
        dockerfile: str,
        build_args: dict[str, str] | None,
    ) -> PushResult:
        ref = parse_ref(image)
        if ref.digest:
            raise SandboxError("push_image takes a repository and tag, not a digest")
        app = ref.repository.split("/")[-1]
        if ref.repository != f"{ORG}/{app}" or app not in self.world.apps():
            known = ", ".join(f"{ORG}/{a}" for a in self.world.apps())
            raise SandboxError(f"no application builds {ref.repository}; repositories: {known}")
        builds = self.world.builds
        job = f"{app}-build"
        with self.world.db.tx() as conn:
            if build_number is None:
                build = builds.last_successful(conn, job)
                if build is None:
                    raise SandboxError(f"{job} has no successful build to package; run trigger_build first")
            else:
                build = builds.load(conn, job, build_number)
            if build.status != "SUCCESS":
                raise SandboxError(
                    f"build #{build.number} of {job} failed; only successful builds can be pushed"
                )
            context = {a.path: self.world.get_blob(conn, a.sha256) for a in build.artifact}
        if dockerfile not in context:
            present = sorted(p for p in context if posixpath.basename(p).startswith("Dockerfile"))
            raise SandboxError(
                f"{dockerfile} is not in build #{build.number}; Dockerfiles: {', '.join(present) or 'none'}"
            )
        chosen_tag = tag or ref.tag or f"{build.version or '0.0.0'}-{build.commit_sha[:7]}"
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", chosen_tag):
            raise SandboxError(f"invalid tag {chosen_tag!r}")
        docker = DockerBuild(context, build_args or {})
        docker.run(dockerfile, context[dockerfile].decode("utf-8", errors="replace"))
        config = docker.config
        digest = manifest_digest(config, docker.layers)
        size = sum(layer.size for layer in docker.layers)
        steps = [*docker.steps, f"Successfully built {digest[7:19]}", f"Pushed {ref.repository}:{chosen_tag}"]
        now = self.world.now()
        record = ImageRecord(
            repository=ref.repository,
            digest=digest,
            app=app,
            job=job,
            build_number=build.number,
            commit_sha=build.commit_sha,
            version=build.version,
            dockerfile=dockerfile,
            config=config,
            layers=docker.layers,
            size=size,
            created_at=now,
            build_log=steps,
        )
        with self.world.db.tx(write=True) as conn:
            existing = conn.execute(
                "SELECT digest FROM tags WHERE repository=? AND tag=?", (ref.repository, chosen_tag)
            ).fetchone()
            if existing is not None and existing["digest"] != digest:
                raise SandboxError(
                    f"tag {ref.repository}:{chosen_tag} already points to {existing['digest']}; "
                    "tags are immutable here: push under a new tag "
                    "(e.g. the default <version>-<commit>) or delete_image it first"
                )
            self.world.put_blobs(conn, docker.blobs.values())
            if self.record(conn, ref.repository, digest) is None:
                conn.execute(
                    "INSERT INTO images(repository, digest, doc) VALUES (?, ?, ?)",
                    (ref.repository, digest, record.model_dump_json()),
                )
            conn.execute(
                "INSERT OR IGNORE INTO tags(repository, tag, digest, created_at) VALUES (?, ?, ?, ?)",
                (ref.repository, chosen_tag, digest, now),
            )
        return PushResult(
            image=f"{ref.repository}:{chosen_tag}",
            repository=ref.repository,
            tag=chosen_tag,
            digest=digest,
            size_bytes=size,
            size=human_size(size),
            already_present=existing is not None,
            source_job=job,
            source_build=build.number,
            commit_sha=build.commit_sha,
            layers=summarise(docker.layers),
            build_steps=steps,
        )

    def pull(self, image: str) -> PullResult:
        with self.world.db.tx() as conn:
            ref, record = self.resolve(conn, image)
        return PullResult(
            image=str(ref),
            digest=record.digest,
            size_bytes=record.size,
            config=record.config,
            layers=summarise(record.layers),
        )

    def verify(self, image: str, require_files: list[str], fail_on_missing: bool = False) -> VerifyResult:
        with self.world.db.tx() as conn:
            ref, record = self.resolve(conn, image)
            problems = []
            layers = []
            owner: dict[str, Layer] = {}
            for layer in record.layers:
                for entry in layer.files:
                    content = self.world.get_blob(conn, entry.sha256)
                    if sha256_hex(content) != entry.sha256 or len(content) != entry.size:
                        problems.append(entry.path)
                    owner[entry.path] = layer
                layers.append(
                    layer.model_copy(update={"digest": layer_digest(layer.instruction, layer.files)})
                )
        recomputed = manifest_digest(record.config, layers)
        integrity = "valid" if not problems and recomputed == record.digest else "corrupt"
        required = []
        for wanted in require_files:
            path = posixpath.normpath(posixpath.join(record.config.workdir, wanted))
            holder = owner.get(path)
            required.append(
                RequiredFile(
                    path=wanted,
                    present=holder is not None,
                    layer=holder.index if holder else None,
                    layer_instruction=holder.instruction if holder else None,
                )
            )
        missing = [r.path for r in required if not r.present]
        if fail_on_missing and (missing or integrity != "valid"):
            what = f"lacks required files {', '.join(missing)}" if missing else "failed its integrity check"
            raise SandboxError(
                f"image {ref} ({record.digest[:19]}) {what}; layers: "
                + "; ".join(f"{layer.index}: {layer.instruction}" for layer in record.layers)
                + ". Add the files and a COPY line to the Dockerfile, rebuild and push a new tag."
            )
        return VerifyResult(
            image=str(ref),
            exists=True,
            digest=record.digest,
            recomputed_digest=recomputed,
            integrity=integrity,
            layer_count=len(record.layers),
            file_count=len(owner),
            required_files=required,
            missing_files=missing,
            verified=integrity == "valid" and not missing,
        )

    def metadata(self, image: str) -> ImageMetadata:
        with self.world.db.tx() as conn:
            ref, record = self.resolve(conn, image)
            tags = self._tags_for(conn, record.repository, record.digest)
        files = sorted({f.path for layer in record.layers for f in layer.files})
        return ImageMetadata(
            image=str(ref),
            repository=record.repository,
            digest=record.digest,
            tags=tags,
            app=record.app,
            version=record.version,
            source_job=record.job,
            source_build=record.build_number,
            commit_sha=record.commit_sha,
            dockerfile=record.dockerfile,
            created_at=record.created_at,
            size_bytes=record.size,
            size=human_size(record.size),
            config=record.config,
            layers=summarise(record.layers),
            files=files,
        )

    def tag(self, source: str, target_tag: str, target_repository: str | None) -> TagResult:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", target_tag):
            raise SandboxError(f"invalid tag {target_tag!r}")
        with self.world.db.tx(write=True) as conn:
            ref, record = self.resolve(conn, source)
            repository = parse_ref(target_repository).repository if target_repository else record.repository
            if repository != record.repository:
                known = conn.execute(
                    "SELECT 1 FROM images WHERE repository=? AND digest=?", (repository, record.digest)
                )
                if known.fetchone() is None:
                    conn.execute(
                        "INSERT INTO images(repository, digest, doc) VALUES (?, ?, ?)",
                        (
                            repository,
                            record.digest,
                            record.model_copy(update={"repository": repository}).model_dump_json(),
                        ),
                    )
            existing = conn.execute(
                "SELECT digest FROM tags WHERE repository=? AND tag=?", (repository, target_tag)
            ).fetchone()
            if existing is not None and existing["digest"] != record.digest:
                raise SandboxError(
                    f"{repository}:{target_tag} already points to {existing['digest']}; tags are immutable, "
                    "choose another tag or delete_image the old one first"
                )
            if existing is None:
                conn.execute(
                    "INSERT INTO tags(repository, tag, digest, created_at) VALUES (?, ?, ?, ?)",
                    (repository, target_tag, record.digest, self.world.now()),
                )
        return TagResult(
            source=str(ref),
            target=f"{repository}:{target_tag}",
            digest=record.digest,
            created=existing is None,
        )

    def list_tags(self, repository: str) -> TagList:
        repo = parse_ref(repository).repository
        with self.world.db.tx() as conn:
            rows = conn.execute(
                "SELECT tag, digest, created_at FROM tags WHERE repository=? ORDER BY created_at, tag",
                (repo,),
            ).fetchall()
            if not rows:
                repos = [r[0] for r in conn.execute("SELECT DISTINCT repository FROM tags ORDER BY 1")]
                raise SandboxError(f"repository {repo} has no tags; repositories: {', '.join(repos)}")
        return TagList(repository=repo, tags=[TagInfo(tag=r[0], digest=r[1], created_at=r[2]) for r in rows])

    def list_repositories(self, name_filter: str | None) -> RepositoryList:
        with self.world.db.tx() as conn:
            repos = [r[0] for r in conn.execute("SELECT DISTINCT repository FROM images ORDER BY 1")]
            result = []
            for repo in repos:
                if name_filter and name_filter.lower() not in repo:
                    continue
                tags = conn.execute(
                    "SELECT tag FROM tags WHERE repository=? ORDER BY created_at DESC, tag DESC", (repo,)
                ).fetchall()
                count = conn.execute("SELECT COUNT(*) FROM images WHERE repository=?", (repo,)).fetchone()[0]
                result.append(
                    RepositoryInfo(
                        repository=repo,
                        tag_count=len(tags),
                        image_count=count,
                        latest_tag=tags[0][0] if tags else None,
                    )
                )
        return RepositoryList(repositories=result)

    def delete(self, image: str) -> DeleteResult:
        with self.world.db.tx(write=True) as conn:
            ref, record = self.resolve(conn, image)
            if ref.digest:
                deleted = self._tags_for(conn, record.repository, record.digest)
                conn.execute(
                    "DELETE FROM tags WHERE repository=? AND digest=?", (record.repository, record.digest)
                )
            else:
                deleted = [ref.tag or "latest"]
                conn.execute("DELETE FROM tags WHERE repository=? AND tag=?", (record.repository, deleted[0]))
            remaining = self._tags_for(conn, record.repository, record.digest)
            if not remaining:
                conn.execute(
                    "DELETE FROM images WHERE repository=? AND digest=?", (record.repository, record.digest)
                )
            users = self.world.cluster.deployments_using(conn, record.digest)
        return DeleteResult(
            image=str(ref),
            digest=record.digest,
            deleted_tags=deleted,
            manifest_deleted=not remaining,
            in_use_by=users,
        )
