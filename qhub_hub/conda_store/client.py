"""A REST client for conda-store, in a blocking and an async flavour with the same methods.

    client = CondaStoreClient("http://conda-store:8080", token)            # blocking
    async with AsyncCondaStoreClient("http://conda-store:8080", token) as c:
        refs = await c.environments_for(config, plan)                       # what plan may use

Listings follow conda-store's pagination (it pages at most 100 items, whatever is asked), so they
return every item. Each operation is written once, as a generator of HTTP calls; the two clients
only differ in how they send a call. Errors become `CondaStoreError` naming the request and what
conda-store said.
"""

from __future__ import annotations

import datetime
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import yaml

from ..config import QHubConfig
from ..policy import UserPlan
from .layout import EnvironmentRef, environment_prefix
from .roles import reader_role_bindings

MAX_PAGE_SIZE = 100  # conda-store's default CondaStoreServer.max_page_size
TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED"})

T = TypeVar("T")


class CondaStoreError(RuntimeError):
    """conda-store refused a request or could not be reached."""

    def __init__(self, method: str, url: str, status: int | None, message: str):
        self.method, self.url, self.status, self.message = method, url, status, message
        where = f"conda-store {method} {url}"
        if status is None:
            super().__init__(f"{where}: cannot reach conda-store ({message}); check "
                             "conda_store.url and that the conda-store server is running")
        else:
            super().__init__(f"{where} answered {status}: {message}")


@dataclass(frozen=True)
class EnvironmentInfo:
    id: int
    namespace: str
    name: str
    current_build_id: int | None
    description: str = ""

    def ref(self, environments_root: str) -> EnvironmentRef:
        return EnvironmentRef(self.namespace, self.name,
                              environment_prefix(environments_root, self.namespace, self.name))


@dataclass(frozen=True)
class BuildInfo:
    id: int
    environment_id: int
    status: str  # QUEUED, BUILDING, COMPLETED, FAILED, CANCELED
    status_info: str | None = None
    specification: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    ok_statuses: tuple[int, ...] = ()  # non-2xx statuses handed back instead of raised
    text: bool = False  # want the body as text, not JSON


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any


Operation = Generator[_Call, _Reply, T]


def _environment(data: Mapping[str, Any]) -> EnvironmentInfo:
    return EnvironmentInfo(
        id=data["id"], namespace=data["namespace"]["name"], name=data["name"],
        current_build_id=data.get("current_build_id"), description=data.get("description") or "",
    )


def _build(data: Mapping[str, Any]) -> BuildInfo:
    spec = data.get("specification")
    return BuildInfo(id=data["id"], environment_id=data["environment_id"], status=data["status"],
                     status_info=data.get("status_info"),
                     specification=spec.get("spec") if isinstance(spec, Mapping) else None)


class _Operations:
    """conda-store's REST API (v1) as generators of calls; see the clients below."""

    def paged(self, path: str, params: Mapping[str, Any] | None = None,
              page_size: int = MAX_PAGE_SIZE) -> Operation[list[dict]]:
        items: list[dict] = []
        seen: set[Any] = set()
        page = 1
        while True:
            reply = yield _Call("GET", path, {**(params or {}), "page": page, "size": page_size})
            data = reply.body.get("data") or []
            for item in data:
                key = item.get("id", id(item))
                if key not in seen:  # an item inserted meanwhile can shift one onto the next page
                    seen.add(key)
                    items.append(item)
            count = reply.body.get("count", 0)
            size = reply.body.get("size") or page_size  # the server caps what was asked
            if not data or page * size >= count:
                return items
            page += 1

    def environments(self, namespace: str | None = None, *, built_only: bool = False,
                     page_size: int = MAX_PAGE_SIZE) -> Operation[list[EnvironmentInfo]]:
        params: dict[str, Any] = {"sort_by": ["namespace", "name"]}
        if namespace is not None:
            params["namespace"] = namespace
        if built_only:
            params["status"] = "COMPLETED"
        items = yield from self.paged("/api/v1/environment/", params, page_size)
        return [_environment(item) for item in items]

    def namespaces(self, page_size: int = MAX_PAGE_SIZE) -> Operation[list[str]]:
        items = yield from self.paged("/api/v1/namespace/", {"sort_by": ["name"]}, page_size)
        return [item["name"] for item in items]

    def environment(self, namespace: str, name: str) -> Operation[EnvironmentInfo | None]:
        reply = yield _Call("GET", f"/api/v1/environment/{namespace}/{name}/", ok_statuses=(404,))
        return None if reply.status == 404 else _environment(reply.body["data"])

    def ensure_namespace(self, name: str) -> Operation[bool]:
        """Create namespace `name` unless it exists; True when it was created."""
        reply = yield _Call("POST", f"/api/v1/namespace/{name}/", ok_statuses=(409,))
        return reply.status != 409

    def submit_specification(self, namespace: str, specification: Mapping[str, Any] | str
                             ) -> Operation[int]:
        """Register an environment.yaml document (as written: pins stay pins); the new build's id."""
        text = specification if isinstance(specification, str) else yaml.safe_dump(
            dict(specification), sort_keys=False)
        reply = yield _Call("POST", "/api/v1/specification/",
                            json={"namespace": namespace, "specification": text})
        return int(reply.body["data"]["build_id"])

    def build(self, build_id: int) -> Operation[BuildInfo]:
        reply = yield _Call("GET", f"/api/v1/build/{build_id}/")
        return _build(reply.body["data"])

    def latest_build(self, namespace: str, name: str) -> Operation[BuildInfo | None]:
        reply = yield _Call("GET", "/api/v1/build/", {
            "namespace": namespace, "name": name, "sort_by": "id", "order": "desc", "size": 1})
        data = reply.body.get("data") or []
        if not data:
            return None
        return (yield from self.build(data[0]["id"]))

    def build_log(self, build_id: int) -> Operation[str]:
        reply = yield _Call("GET", f"/api/v1/build/{build_id}/logs/", text=True, ok_statuses=(404,))
        return "" if reply.status == 404 else reply.body

    def settings(self, namespace: str, name: str | None = None) -> Operation[dict[str, Any]]:
        path = f"/api/v1/setting/{namespace}/" + (f"{name}/" if name else "")
        reply = yield _Call("GET", path)
        return reply.body["data"]

    def permissions(self) -> Operation[dict[str, Any]]:
        reply = yield _Call("GET", "/api/v1/permission/")
        return reply.body["data"]

    def create_token(self, primary_namespace: str, role_bindings: Mapping[str, list[str]],
                     expiration: datetime.datetime | None = None) -> Operation[str]:
        """A token with `role_bindings`; conda-store refuses (400) more than the caller holds."""
        body: dict[str, Any] = {"primary_namespace": primary_namespace,
                                "role_bindings": dict(role_bindings)}
        if expiration is not None:
            body["expiration"] = expiration.isoformat()
        reply = yield _Call("POST", "/api/v1/token/", json=body)
        return reply.body["data"]["token"]

    def user_token(self, plan: UserPlan, expiration: datetime.datetime | None = None
                   ) -> Operation[str]:
        """A token that reads exactly the plan's namespaces: the one a user server may hold.

        It cannot outlive the caller's token: with the hub's (predefined) token that is a day
        from now, unless `expiration` is earlier.
        """
        return (yield from self.create_token(plan.unix_name, reader_role_bindings(plan), expiration))

    def environments_for(self, config: QHubConfig, plan: UserPlan, *, built_only: bool = True
                         ) -> Operation[list[EnvironmentRef]]:
        """The environments `plan` may use, as conda-store knows them (own, groups', global).

        `built_only`: only environments whose current build completed (usable right now).
        """
        refs: list[EnvironmentRef] = []
        for namespace in dict.fromkeys(plan.environment_namespaces):
            envs = yield from self.environments(namespace, built_only=built_only)
            refs += [env.ref(config.conda_store.environments_root) for env in envs]
        return refs


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("detail") or body)
    return str(body)


class _Base:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.ops = _Operations()

    def _request_args(self, call: _Call) -> dict[str, Any]:
        return {"method": call.method, "url": self.url + call.path, "params": call.params,
                "json": call.json}

    def _reply(self, call: _Call, response: httpx.Response) -> _Reply:
        if response.status_code in call.ok_statuses:
            return _Reply(response.status_code, None)
        if not response.is_success:
            raise CondaStoreError(call.method, call.path, response.status_code,
                                  _error_message(response))
        if call.text:
            return _Reply(response.status_code, response.text)
        try:
            return _Reply(response.status_code, response.json())
        except ValueError:
            raise CondaStoreError(call.method, call.path, response.status_code,
                                  f"not JSON: {response.text[:200]!r}") from None

    @staticmethod
    def _unreachable(call: _Call, error: httpx.HTTPError) -> CondaStoreError:
        return CondaStoreError(call.method, call.path, None, f"{type(error).__name__}: {error}")


class CondaStoreClient(_Base):
    """Blocking client. `token` is a conda-store token (a predefined one, or one it issued)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(url, token, timeout=timeout)
        self.http = httpx.Client(headers=self.headers, timeout=timeout, follow_redirects=True,
                                 transport=transport)

    def run(self, operation: Operation[T]) -> T:
        reply: _Reply | None = None
        try:
            while True:
                call = operation.send(reply)  # type: ignore[arg-type]
                try:
                    response = self.http.request(**self._request_args(call))
                except httpx.HTTPError as e:
                    raise self._unreachable(call, e) from None
                reply = self._reply(call, response)
        except StopIteration as done:
            return done.value

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CondaStoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def environments(self, namespace: str | None = None, *, built_only: bool = False,
                     page_size: int = MAX_PAGE_SIZE) -> list[EnvironmentInfo]:
        return self.run(self.ops.environments(namespace, built_only=built_only,
                                              page_size=page_size))

    def namespaces(self, page_size: int = MAX_PAGE_SIZE) -> list[str]:
        return self.run(self.ops.namespaces(page_size))

    def environment(self, namespace: str, name: str) -> EnvironmentInfo | None:
        return self.run(self.ops.environment(namespace, name))

    def ensure_namespace(self, name: str) -> bool:
        return self.run(self.ops.ensure_namespace(name))

    def submit_specification(self, namespace: str, specification: Mapping[str, Any] | str) -> int:
        return self.run(self.ops.submit_specification(namespace, specification))

    def build(self, build_id: int) -> BuildInfo:
        return self.run(self.ops.build(build_id))

    def latest_build(self, namespace: str, name: str) -> BuildInfo | None:
        return self.run(self.ops.latest_build(namespace, name))

    def build_log(self, build_id: int) -> str:
        return self.run(self.ops.build_log(build_id))

    def settings(self, namespace: str, name: str | None = None) -> dict[str, Any]:
        return self.run(self.ops.settings(namespace, name))

    def permissions(self) -> dict[str, Any]:
        return self.run(self.ops.permissions())

    def create_token(self, primary_namespace: str, role_bindings: Mapping[str, list[str]],
                     expiration: datetime.datetime | None = None) -> str:
        return self.run(self.ops.create_token(primary_namespace, role_bindings, expiration))

    def user_token(self, plan: UserPlan, expiration: datetime.datetime | None = None) -> str:
        return self.run(self.ops.user_token(plan, expiration))

    def environments_for(self, config: QHubConfig, plan: UserPlan, *, built_only: bool = True
                         ) -> list[EnvironmentRef]:
        return self.run(self.ops.environments_for(config, plan, built_only=built_only))


class AsyncCondaStoreClient(_Base):
    """The same methods as `CondaStoreClient`, as coroutines (for the hub and Dask Gateway)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(url, token, timeout=timeout)
        self.http = httpx.AsyncClient(headers=self.headers, timeout=timeout,
                                      follow_redirects=True, transport=transport)

    async def run(self, operation: Operation[T]) -> T:
        reply: _Reply | None = None
        try:
            while True:
                call = operation.send(reply)  # type: ignore[arg-type]
                try:
                    response = await self.http.request(**self._request_args(call))
                except httpx.HTTPError as e:
                    raise self._unreachable(call, e) from None
                reply = self._reply(call, response)
        except StopIteration as done:
            return done.value

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncCondaStoreClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def environments(self, namespace: str | None = None, *, built_only: bool = False,
                           page_size: int = MAX_PAGE_SIZE) -> list[EnvironmentInfo]:
        return await self.run(self.ops.environments(namespace, built_only=built_only,
                                                    page_size=page_size))

    async def namespaces(self, page_size: int = MAX_PAGE_SIZE) -> list[str]:
        return await self.run(self.ops.namespaces(page_size))

    async def environment(self, namespace: str, name: str) -> EnvironmentInfo | None:
        return await self.run(self.ops.environment(namespace, name))

    async def ensure_namespace(self, name: str) -> bool:
        return await self.run(self.ops.ensure_namespace(name))

    async def submit_specification(self, namespace: str,
                                   specification: Mapping[str, Any] | str) -> int:
        return await self.run(self.ops.submit_specification(namespace, specification))

    async def build(self, build_id: int) -> BuildInfo:
        return await self.run(self.ops.build(build_id))

    async def latest_build(self, namespace: str, name: str) -> BuildInfo | None:
        return await self.run(self.ops.latest_build(namespace, name))

    async def build_log(self, build_id: int) -> str:
        return await self.run(self.ops.build_log(build_id))

    async def settings(self, namespace: str, name: str | None = None) -> dict[str, Any]:
        return await self.run(self.ops.settings(namespace, name))

    async def permissions(self) -> dict[str, Any]:
        return await self.run(self.ops.permissions())

    async def create_token(self, primary_namespace: str, role_bindings: Mapping[str, list[str]],
                           expiration: datetime.datetime | None = None) -> str:
        return await self.run(self.ops.create_token(primary_namespace, role_bindings, expiration))

    async def user_token(self, plan: UserPlan,
                         expiration: datetime.datetime | None = None) -> str:
        return await self.run(self.ops.user_token(plan, expiration))

    async def environments_for(self, config: QHubConfig, plan: UserPlan, *,
                               built_only: bool = True) -> list[EnvironmentRef]:
        return await self.run(self.ops.environments_for(config, plan, built_only=built_only))
