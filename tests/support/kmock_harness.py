"""A stricter KMock emulator + a threaded kopf runner, for running a real kopf operator in tests.

Fixes/extends KMock 0.8's KubernetesEmulator (kmock/_internal/k8s.py) where kopf needs it:

* metadata.uid / resourceVersion / generation / creationTimestamp / namespace are set
  by the server, as by a real API server (kopf's finalizer JSON-patches test
  /metadata/resourceVersion; kopf.adopt() needs metadata.uid);
* metadata.generateName works (kopf posts every k8s Event with generateName only);
* the status subresource is honoured: writes to the object ignore .status,
  writes to .../status ignore everything but .status; generation bumps on spec changes;
* a failed JSON-patch "test" is 422 (kopf's conflict signal), not a 500;
* watches honour ?resourceVersion= (KMock replays every object as ADDED on each watch);
* every write to a resource with a registered CRD is validated against the CRD schema
  (422 Invalid, and recorded in .violations so that the test fails);
* GET/POST /api/v1/namespaces and /api/v1/namespaces/{name} are parsed (KMock 0.8 crashes);
* ownerReferences are garbage-collected (background cascading deletion).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import random
import string
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import jsonpatch
import jsonpointer
import kmock
import kopf
from kmock._internal import dicts, dsl, parsing, rendering

Validator = Callable[[dict[str, Any], dict[str, Any]], list[str]]


def pruned_fields(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields a real API server would silently drop (not in a structural schema): bugs to catch."""
    found: list[str] = []
    if (
        isinstance(value, dict)
        and schema.get("type") == "object"
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if path == "" and key in ("apiVersion", "kind", "metadata"):
                continue
            if key in props:
                found += pruned_fields(props[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned_fields(extra, sub, f"{path}.{key}")
            elif extra is not True:
                found.append(f"{path}.{key}: unknown field (would be pruned)")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += pruned_fields(schema["items"], item, f"{path}[{i}]")
    return found


# --- KMock 0.8 cannot parse /api/v1/namespaces (parsing.parse_path raises ValueError). ---

_original_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"]:
        if len(parts) == 3:  # list / create / watch namespaces
            return parsing.ParsedPath("", "v1", "namespaces", None, None, None)
        if len(parts) == 4:  # get / patch / delete one namespace
            return parsing.ParsedPath("", "v1", "namespaces", None, parts[3], None)
        if len(parts) == 5 and parts[4] in ("status", "finalize"):
            return parsing.ParsedPath("", "v1", "namespaces", None, parts[3], parts[4])
    return _original_parse_path(path)


def install_namespace_path_fix() -> None:
    """Idempotent; rendering.Request._parse looks parse_path up on the module at call time."""
    parsing.parse_path = _parse_path
    install_fast_membership()


# --- KMock 0.8 matches each request to its reactions by scanning the whole request log
# (dsl.View.__contains__ iterates every earlier request through every filter), so each
# request costs O(requests so far) and a test of a thousand objects never finishes.
# The same answer, in O(1) for the request being handled: a plain Filter contains a
# request when its source does and its criteria hold; a root contains the requests it
# logged, the newest (the one being handled) last.

_original_contains = dsl.View.__contains__


def _contains(self: Any, item: Any) -> bool:
    if isinstance(item, rendering.Request):
        if type(self) is dsl.Filter:
            return bool(self.criteria(item)) and _contains(self._source, item)
        if isinstance(self, dsl.Root) and type(self).__iter__ is dsl.Root.__iter__:
            return any(request is item for request in reversed(self._requests))
    return bool(_original_contains(self, item))


def install_fast_membership() -> None:
    dsl.View.__contains__ = _contains  # type: ignore[method-assign]


# --- The emulator. ---

_A = kmock.action


class _NoOp(Exception):
    pass


def _rewrite(request: kmock.Request, **changes: Any) -> kmock.Request:
    # KMock matches reactions to requests by identity with its request log (dsl.py, View.__contains__),
    # so an attrs.evolve()'d copy matches nothing. Rewrite in place: .data/.action change,
    # .body/.text keep what the client really sent (assert on json.loads(request.body)).
    for field, value in changes.items():
        object.__setattr__(request, field, value)
    return request


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class StrictEmulator(kmock.KubernetesEmulator):
    validators: dict[kmock.resource, Validator] = attrs.field(factory=dict)
    crds: dict[kmock.resource, dict[str, Any]] = attrs.field(factory=dict)
    violations: list[str] = attrs.field(factory=list)
    # Every create answered 409 AlreadyExists, as "<plural>/<namespace>/<name>" (issue 14).
    conflicts: list[str] = attrs.field(factory=list)
    # False: store objects without metadata.uid, as plain KMock 0.8 does (issue 14).
    assign_uids: bool = True
    # True: creating in a namespace with no Namespace object answers 404, as a real API
    # server does (issue 14: the operator's own namespace missing at login).
    require_namespaces: bool = False
    _rv: int = attrs.field(default=0, init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _changed: asyncio.Condition = attrs.field(factory=asyncio.Condition, init=False)

    # -- registration helpers --

    def add_builtin(
        self,
        key: str,
        kind: str,
        *,
        namespaced: bool,
        verbs: set[str] = frozenset({"get", "list", "watch", "create", "patch", "delete"}),
        subresources: set[str] = frozenset(),
    ) -> None:
        self.resources[key] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=namespaced,
            verbs=set(verbs),
            subresources=set(subresources),
        )

    def add_kopf_backbone(self) -> None:
        """What kopf needs served before it does anything: without namespaces and
        CRDs it waits forever for its "backbone" resources, and without v1/events its
        event poster waits forever (Events are silently not posted)."""
        self.add_builtin("v1/namespaces", "Namespace", namespaced=False)
        self.add_builtin(
            "apiextensions.k8s.io/v1/customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
        )
        self.add_builtin("v1/events", "Event", namespaced=True)

    def add_crd(self, crd: Mapping[str, Any], validator: Validator | None = None) -> None:
        """Serve a CRD's resources (discovery) and validate writes to them with `validator`."""
        spec, names = crd["spec"], crd["spec"]["names"]
        for version in spec["versions"]:
            res = kmock.resource(spec["group"], version["name"], names["plural"])
            self.resources[res] = kmock.ResourceInfo(
                kind=names["kind"],
                singular=names.get("singular", names["kind"].lower()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                shortnames=set(names.get("shortNames", [])),
                categories=set(names.get("categories", [])),
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                subresources=set(version.get("subresources", {})),
            )
            self.crds[res] = dict(crd)
            if validator is not None:
                self.validators[res] = validator
        # Also store the CRD object itself, as a cluster would (kubectl get crd; kopf's CRD watch).
        self.objects[
            "apiextensions.k8s.io/v1/customresourcedefinitions", None, crd["metadata"]["name"]
        ] = dict(crd)

    # -- waiting & inspection helpers for tests --

    async def wait_for(self, predicate: Callable[[], Any], seconds: float = 5.0) -> Any:
        """Wait until predicate() is truthy; re-checked after every write. No sleeps."""

        async def _wait() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(_wait(), seconds)

    def watched(self, *resources: str) -> bool:
        """Whether all these resources are being watched (e.g. kopf finished its startup scan)."""
        watching = {
            r.resource for r in self if r.action == _A.WATCH
        }  # iterating KMock = its request log
        return all(kmock.resource(res) in watching for res in resources)

    def get(self, res: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (
            kmock.resource(res),
            namespace,
            name,
        )  # NB: ObjectsArray.__contains__ does not parse strings
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    def list(self, res: str) -> list[dict[str, Any]]:
        r = kmock.resource(res)
        return [
            copy.deepcopy(o.raw)
            for (k, _, _), o in self.objects.items()
            if k == r and not o.deleted
        ]

    def events_for(self, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.list("v1/events")
            if e.get("involvedObject", {}).get("name") == name
            and (namespace is None or e["involvedObject"].get("namespace") == namespace)
        ]

    # -- the server side --

    def _gone(self, key: Any) -> bool:
        return key not in self.objects or bool(self.objects[key].deleted)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _info(self, res: kmock.resource) -> kmock.ResourceInfo | None:
        return self.resources[res] if res in self.resources else None

    def _validate(self, res: kmock.resource, obj: dict[str, Any], what: str) -> None:
        validator = self.validators.get(res)
        errors = validator(self.crds[res], obj) if validator else []
        if errors:
            message = (
                f"{what} {res.plural} {obj.get('metadata', {}).get('name')!r} is invalid: "
                + "; ".join(errors)
            )
            self.violations.append(message)
            raise kmock.KubernetesError(status=422, reason="Invalid", message=message)

    def _namespace_exists(self, namespace: str) -> bool:
        return not self._gone((kmock.resource("v1/namespaces"), None, namespace))

    def _prepare_create(self, request: kmock.Request) -> kmock.Request:
        res = request.resource
        info = self._info(res)
        obj = copy.deepcopy(request.data) if isinstance(request.data, dict) else None
        if obj is None:
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message="a JSON object is required"
            )
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise kmock.KubernetesError(
                    status=422, reason="Invalid", message="metadata.name: Required value"
                )
            meta["name"] = meta["generateName"] + "".join(
                random.choices(string.ascii_lowercase + string.digits, k=5)
            )
        namespace = request.namespace or meta.get("namespace")
        if info is not None and info.namespaced:
            if not namespace:
                raise kmock.KubernetesError(
                    status=422, reason="Invalid", message="metadata.namespace: Required value"
                )
            meta["namespace"] = namespace
            if self.require_namespaces and not self._namespace_exists(namespace):
                raise kmock.KubernetesError(
                    status=404, reason="NotFound", message=f'namespaces "{namespace}" not found'
                )
        key = (res, namespace if (info is None or info.namespaced) else None, meta["name"])
        if key in self.objects and not self.objects[key].deleted:
            self.conflicts.append(f"{res.plural}/{key[1]}/{meta['name']}")
            raise kmock.KubernetesError(
                status=409,
                reason="AlreadyExists",
                message=f"{res.plural} {meta['name']!r} already exists",
            )
        if self.assign_uids:
            meta["uid"] = str(uuid.uuid4())
        meta.update(
            resourceVersion=self._next_rv(),
            creationTimestamp=_now(),
            generation=1,
        )
        meta.pop("deletionTimestamp", None)
        if info is not None and "status" in info.subresources:
            obj.pop("status", None)  # the status subresource ignores .status on create
        self._validate(res, obj, "creating")
        return _rewrite(request, data=obj, namespace=key[1])

    def _prepare_update(self, request: kmock.Request) -> kmock.Request:
        res = request.resource
        key = (res, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return request  # KMock answers 404
        info = self._info(res)
        current = copy.deepcopy(self.objects[key].raw)
        try:
            patched = dict(dicts.patch_dict(copy.deepcopy(current), request.data))
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            ValueError,
            TypeError,
        ) as e:
            # A failed "test" op is how kopf detects conflicts: it expects 422, not KMock's 500.
            raise kmock.KubernetesError(
                status=422, reason="Invalid", message=f"patch failed: {e}"
            ) from e
        has_status = info is not None and "status" in info.subresources
        if has_status and request.subresource == "status":
            new = dict(current)
            if "status" in patched:
                new["status"] = patched["status"]
            else:
                new.pop("status", None)
        elif has_status:
            new = dict(patched)
            if "status" in current:
                new["status"] = current["status"]
            else:
                new.pop("status", None)
        else:
            new = patched
        if new == current:
            raise _NoOp()
        meta = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "namespace", "name"):  # immutable
            if field in current.get("metadata", {}):
                meta[field] = current["metadata"][field]
        ignored = {"metadata", "status"} if has_status else {"metadata"}
        if {k: v for k, v in new.items() if k not in ignored} != {
            k: v for k, v in current.items() if k not in ignored
        }:
            meta["generation"] = int(current.get("metadata", {}).get("generation", 0)) + 1
        meta["resourceVersion"] = self._next_rv()
        self._validate(res, new, "patching")
        return _rewrite(request, data=[{"op": "replace", "path": "", "value": new}])

    def _prepare_delete(self, request: kmock.Request) -> kmock.Request:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return request  # KMock answers 404
        current = copy.deepcopy(self.objects[key].raw)
        meta = current.get("metadata", {})
        if meta.get("finalizers") and not meta.get("deletionTimestamp"):
            # Soft deletion as an update with a new resourceVersion (MODIFIED event).
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["resourceVersion"] = self._next_rv()
            return _rewrite(
                request, action=_A.UPDATE, data=[{"op": "replace", "path": "", "value": new}]
            )
        return request

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is None or request.action not in (_A.CREATE, _A.UPDATE, _A.DELETE):
            async with (
                self._changed
            ):  # e.g. for wait_for(k8s.watched(...)): the request is logged now
                self._changed.notify_all()
            return await super()._handle(request)
        try:
            async with self._write_lock:
                if request.action == _A.CREATE:
                    request = self._prepare_create(request)
                elif request.action == _A.UPDATE and request.name is not None:
                    try:
                        request = self._prepare_update(request)
                    except _NoOp:  # answer with the object, but store/emit nothing (no new version)
                        return await kmock.RawHandler._handle(self, request)
                elif request.action == _A.DELETE and request.name is not None:
                    request = self._prepare_delete(request)
                try:
                    return await super()._handle(request)
                finally:
                    # Only a deletion can orphan anything (a DELETE, or an update that
                    # removed the last finalizer): scanning every object after every
                    # write made large tests quadratic.
                    if request.action == _A.DELETE or (
                        request.action == _A.UPDATE
                        and request.name is not None
                        and self._gone((request.resource, request.namespace, request.name))
                    ):
                        await self._collect_garbage()
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def _collect_garbage(self) -> None:
        """Background cascading deletion: objects whose every owner is gone are deleted too."""
        while True:
            alive = {o.raw["metadata"].get("uid") for o in self.objects.values() if not o.deleted}
            orphans = [
                (key, o)
                for key, o in self.objects.items()
                if not o.deleted
                and (refs := o.raw.get("metadata", {}).get("ownerReferences"))
                and not any(ref.get("uid") in alive for ref in refs)
            ]
            if not orphans:
                return
            async with self._lock:
                for (res, _, _), obj in orphans:
                    if obj.raw["metadata"].get("finalizers"):
                        if not obj.raw["metadata"].get("deletionTimestamp"):
                            new = copy.deepcopy(obj.raw)
                            new["metadata"].update(
                                deletionTimestamp=_now(), resourceVersion=self._next_rv()
                            )
                            obj.patch([{"op": "replace", "path": "", "value": new}])
                            await self._buses[res].put({"type": "MODIFIED", "object": obj.raw})
                        continue  # blocked by its finalizers, as in Kubernetes
                    raw = obj.raw
                    obj.delete()
                    await self._buses[res].put({"type": "DELETED", "object": raw})
            if all(o.raw["metadata"].get("finalizers") for _, o in orphans if not o.deleted):
                return

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        result["metadata"]["resourceVersion"] = str(self._rv)
        return result

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        # KMock replays ALL existing objects as ADDED on every watch, ignoring ?resourceVersion=;
        # kopf then handles a freshly created object twice. Replay only what is newer.
        try:
            since = int(request.params.get("resourceVersion", ""))
        except ValueError:
            since = None
        yield b""
        async with self._lock:
            objs = self._KubernetesEmulator__get_objs(request, strict=False)
            events = [
                {"type": "ADDED", "object": obj.raw}
                for obj in objs
                if not obj.deleted
                if since is None
                or int(obj.raw.get("metadata", {}).get("resourceVersion") or 0) > since
            ]
        for event in events:
            yield event
        async for event in self._buses[request.resource]:
            meta = event.get("object", {}).get("metadata", {})
            if self._KubernetesEmulator__check(
                request, request.resource, meta.get("namespace"), meta.get("name"), strict=False
            ):
                yield event


# --- Running the real kopf operator in a thread of its own. ---


class OperatorThread:
    """
    Run kopf.operator() in its own thread & event loop; async enter/exit.

    Not in the test's loop: kopf.operator() treats every task created in its loop after it
    started as its own "hung" task on exit (kopf/_core/reactor/running.py, run_tasks()):
    it waits 5 s for them and then cancels them -- that includes KMock's server-side
    connection tasks and any second operator. Not KopfRunner either: its __exit__ joins the
    thread synchronously, which blocks the loop that serves KMock.
    """

    def __init__(
        self,
        *,
        registry: kopf.OperatorRegistry,
        settings: kopf.OperatorSettings,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.timeout = timeout
        self.kwargs = kwargs
        self.exception: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._target, daemon=True, name="kopf-operator")

    def _target(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    stop_flag=self._stop,
                    ready_flag=self._ready,
                    **self.kwargs,
                )
            )
        except BaseException as e:
            self.exception = e
        finally:
            self._ready.set()

    async def __aenter__(self) -> OperatorThread:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, self.timeout)
        if self.exception is not None:
            raise self.exception
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, self.timeout)  # never block the KMock loop
        if self._thread.is_alive():
            raise RuntimeError("the operator did not stop in time")

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self.exception is not None:
            raise self.exception


def fast_settings(*, standalone: bool = True) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.standalone = standalone
    # kopf.event()/info()/warn() post v1 Events (posting.loggers=False by default in kopf 1.45:
    # handlers' log lines are not posted); retry a failed post quickly.
    settings.posting.default_backoffs = [0.1, 0.2]
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]  # API retries: default 1,1,2,3,5,8,13,21 s
    settings.networking.request_timeout = 10
    settings.watching.reconnect_backoff = 0.1
    settings.queueing.exit_timeout = 0.5  # default 2 s wait for per-object workers on exit
    settings.background.cancellation_polling = 0.1  # daemons/timers stop faster (default 60)
    settings.persistence.consistency_timeout = (
        1.0  # default 5 s; fine when resourceVersions are real
    )
    settings.process.ultimate_exiting_timeout = None
    return settings
