"""The envelope every hookline resource shares: apiVersion, kind, metadata."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Model, ObjectName


class ObjectMeta(BaseModel):
    """The parts of metav1.ObjectMeta hookline reads; the rest is kept as it is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: ObjectName
    namespace: ObjectName | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(Model):
    """apiVersion/kind/metadata; subclasses add `spec` and `status`."""

    # Objects read from the API server carry managedFields and the like in metadata,
    # which ObjectMeta keeps; top-level fields beyond these are a mistake.
    api_version: Literal["hookline.dev/v1alpha1"] = Field(
        default="hookline.dev/v1alpha1", alias="apiVersion"
    )
    kind: str
    metadata: ObjectMeta

    @property
    def key(self) -> str:
        """<namespace>/<name>, the id the receiver and admin API use."""
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"

    def to_k8s(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
