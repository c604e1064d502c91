"""Pulling images over the OCI distribution API: anonymous or bearer-token access
from the registry's WWW-Authenticate challenge, basic auth from a docker-style
auth.json, indexes resolved to linux/amd64, layers fetched in parallel.

Every blob is verified before it becomes visible, and the image is recorded only
once all of it is in place, so an interrupted pull leaves nothing an image lookup
can see.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import yarl

from podbay.runtime.images.manifests import INDEX_TYPES, MANIFEST_TYPES, is_index, select_platform
from podbay.runtime.images.reference import DEFAULT_REGISTRY, Reference, parse_reference
from podbay.runtime.images.digests import Progress, digest_of
from podbay.runtime.images.unpack import ImageFsLow

if TYPE_CHECKING:
    from podbay.runtime.images.store import Image, ImageStore

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", DOCKER_HUB)
PLAIN_HTTP_HOSTS = ("localhost", "127.0.0.1", "[::1]")
PARALLEL_LAYERS = 3
CHUNK = 1 << 16
MAX_MANIFEST = 4 << 20  # as containerd: a manifest is small; more is a broken or hostile registry
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))


class PullError(RuntimeError):
    pass


def registry_url(registry: str) -> str:
    """Docker Hub's API host; plain http only for registries on this machine."""
    if registry == DEFAULT_REGISTRY:
        return f"https://{DOCKER_HUB}"
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    scheme = "http" if host in PLAIN_HTTP_HOSTS else "https"
    return f"{scheme}://{registry}"


def credentials(auth_file: Path | None, ref: Reference) -> tuple[str, str] | None:
    """(user, password) for the reference from a docker/podman auth.json: the longest
    key matching `registry/repository` wins; Docker Hub also answers to its legacy keys."""
    if auth_file is None:
        return None
    try:
        auths = json.loads(Path(auth_file).read_text()).get("auths") or {}
    except (OSError, ValueError) as e:
        raise PullError(f"auth file {auth_file}: {e}") from None
    wanted = f"{ref.registry}/{ref.repository}"
    best: tuple[int, dict[str, Any]] | None = None
    for key, entry in auths.items():
        name = re.sub(r"^https?://", "", key).rstrip("/")
        if ref.registry == DEFAULT_REGISTRY and key in DOCKER_HUB_AUTH_KEYS:
            name = DEFAULT_REGISTRY
        if (wanted == name or wanted.startswith(name + "/")) and (best is None or len(name) > best[0]):
            best = (len(name), entry)
    if best is None:
        return None
    entry = best[1]
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return user, password
    if entry.get("username"):
        return entry["username"], entry.get("password", "")
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="https://auth",service="x",scope="y"` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


class RegistryClient:
    """One repository on one registry, with the token its challenge asked for."""

    def __init__(self, session: aiohttp.ClientSession, ref: Reference, creds: tuple[str, str] | None) -> None:
        self.session = session
        self.ref = ref
        self.base = f"{registry_url(ref.registry)}/v2/{ref.repository}"
        self.creds = creds
        self.authorization: str | None = None
        self._auth_lock = asyncio.Lock()

    async def _authorize(self, challenge: str, rejected: str | None) -> None:
        async with self._auth_lock:
            if self.authorization != rejected:
                return  # another request already answered the challenge
            scheme, params = parse_challenge(challenge)
            if scheme == "basic":
                if self.creds is None:
                    raise PullError(f"{self.ref.registry} wants a user name and password: pass an auth file")
                self.authorization = _basic(self.creds)
            elif scheme == "bearer" and "realm" in params:
                query: dict[str, str] = {k: params[k] for k in ("service", "scope") if k in params}
                query.setdefault("scope", f"repository:{self.ref.repository}:pull")
                headers = {"Authorization": _basic(self.creds)} if self.creds else {}
                async with self.session.get(params["realm"], params=query, headers=headers) as resp:
                    if resp.status != 200:
                        raise PullError(f"token from {params['realm']}: HTTP {resp.status} {await resp.text()}")
                    body = await resp.json(content_type=None)
                token = body.get("token") or body.get("access_token")
                if not token:
                    raise PullError(f"token from {params['realm']}: no token in the answer")
                self.authorization = f"Bearer {token}"
            else:
                raise PullError(f"{self.ref.registry}: unsupported auth challenge {challenge!r}")

    async def request(self, path: str, accept: str | None = None) -> aiohttp.ClientResponse:
        """GETs `path`, answering one auth challenge; the caller releases the response."""
        for _ in range(2):
            headers = {"Accept": accept} if accept else {}
            sent = self.authorization
            if sent:
                headers["Authorization"] = sent
            resp = await self.session.get(f"{self.base}/{path}", headers=headers, allow_redirects=False)
            if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                # Blob storage behind a redirect (a CDN, S3) takes its own signed URL and
                # refuses a second credential, so the registry's token is not sent there.
                location = resp.url.join(yarl.URL(resp.headers["Location"]))
                resp.release()
                resp = await self.session.get(location, headers={"Accept": accept} if accept else {})
            if resp.status == 401 and "WWW-Authenticate" in resp.headers:
                challenge = resp.headers["WWW-Authenticate"]
                resp.release()
                if sent and sent == self.authorization and parse_challenge(challenge)[0] == "basic":
                    break
                await self._authorize(challenge, sent)
                continue
            if resp.status != 200:
                text = await resp.text()
                resp.release()
                raise PullError(f"{self.ref.registry}/{self.ref.repository}: GET {path}: HTTP {resp.status}"
                                f"{_registry_error(text)}")
            return resp
        if self.creds is None:
            raise PullError(f"{self.ref.registry}/{self.ref.repository}: pull access denied (HTTP 401): "
                            "the repository may be private; pass an auth file")
        raise PullError(f"{self.ref.registry}/{self.ref.repository}: authentication failed (HTTP 401): "
                        "check the auth file's credentials")

    async def manifest(self, selector: str, declared: str | None = None) -> tuple[str, bytes, dict[str, Any]]:
        """(digest, raw bytes, document) of a manifest or index, checked against the
        digest when `selector` is one."""
        async with await self.request(f"manifests/{selector}", ACCEPT) as resp:
            raw = b""
            async for chunk in resp.content.iter_chunked(CHUNK):
                raw += chunk
                if len(raw) > MAX_MANIFEST:
                    raise PullError(f"manifest {selector}: larger than {MAX_MANIFEST} bytes")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = digest_of(raw)
        if selector.startswith("sha256:") and digest != selector:
            raise PullError(f"manifest {selector}: the registry sent content with digest {digest}")
        doc = json.loads(raw)
        is_index(doc, declared or content_type)  # refuses schema 1 and unknown types clearly
        return digest, raw, doc

    async def blob(self, store: "ImageStore", digest: str, size: int, progress: Progress | None) -> None:
        if store.content.has_blob(digest):
            if progress:
                progress(digest, size, size)
            return
        async with await self.request(f"blobs/{digest}") as resp:
            total = resp.content_length or size
            if progress:
                progress(digest, 0, total)  # a download starts at 0; a blob already held is one done == total
            with store.content.blob_writer() as writer:
                async for chunk in resp.content.iter_chunked(CHUNK):
                    writer.write(chunk)
                    if size and writer.size > size:
                        raise PullError(f"blob {digest}: the registry sent more than the {size} bytes "
                                        "the manifest says")
                    if progress:
                        progress(digest, writer.size, total)
                try:
                    writer.commit(digest)
                except ValueError as e:
                    raise PullError(f"blob {digest}: {e}") from None


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _registry_error(text: str) -> str:
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return f": {text[:200]}" if text else ""
    return "".join(f": {e.get('code', '')} {e.get('message', '')}".rstrip() for e in errors)


async def pull(store: "ImageStore", ref: str, *, progress: Progress | None = None,
               auth_file: Path | None = None) -> "Image":
    parsed = parse_reference(ref)
    creds = credentials(auth_file, parsed)
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            client = RegistryClient(session, parsed, creds)
            top, raw, doc = await client.manifest(parsed.selector)
            manifest_digest, manifest_raw, manifest = top, raw, doc
            while is_index(manifest):
                desc = select_platform(manifest)
                manifest_digest, manifest_raw, manifest = await client.manifest(desc["digest"], desc.get("mediaType"))
            await _fetch_all(client, store, [manifest["config"], *(manifest.get("layers") or [])], progress)
        store.content.put_blob(manifest_raw, manifest_digest)
        if top != manifest_digest:
            store.content.put_blob(raw, top)
        try:
            return await asyncio.to_thread(
                store.add_image, manifest_digest, tags=[f"{parsed.name}:{parsed.tag}"] if parsed.tag else [],
                repo_digests=[f"{parsed.name}@{top}"], index_digest=top if top != manifest_digest else None)
        except BaseException:
            # Refused (too large, not tar, ...): its blobs would only take room.
            fetched = [manifest["config"], *(manifest.get("layers") or [])]
            store.drop_unused_blobs({top, manifest_digest, *(d.get("digest") for d in fetched if isinstance(d, dict))})
            raise
    except (aiohttp.ClientError, asyncio.TimeoutError, LookupError, ValueError, ImageFsLow) as e:
        raise PullError(f'pulling "{parsed}": {e or type(e).__name__}') from e


async def _fetch_all(client: RegistryClient, store: "ImageStore", blobs: list[dict[str, Any]],
                     progress: Progress | None) -> None:
    """Fetches blobs a few at a time; the first failure cancels the rest."""
    sem = asyncio.Semaphore(PARALLEL_LAYERS)

    async def fetch(desc: dict[str, Any]) -> None:
        async with sem:
            await client.blob(store, desc["digest"], int(desc.get("size") or 0), progress)

    try:
        async with asyncio.TaskGroup() as group:
            for desc in blobs:
                group.create_task(fetch(desc))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
