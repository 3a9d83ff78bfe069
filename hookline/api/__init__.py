"""The resource model: pydantic models of Webhook, EventFilter and EventType.

The one source of truth: crds/ is generated from these (hookline.api.crd), and the
operator and receiver parse every resource through them.
"""

from .common import API_VERSION, GROUP, VERSION, Condition, SecretKeyRef, parse_duration
from .errors import format_validation_error
from .eventfilter import EventFilter, EventFilterSpec, Operator, Rule
from .eventtype import EventType, EventTypeSpec
from .resource import ObjectMeta, Resource
from .webhook import AuthType, Destination, Webhook, WebhookSpec

RESOURCE_KINDS: dict[str, type[Resource]] = {
    "Webhook": Webhook,
    "EventFilter": EventFilter,
    "EventType": EventType,
}

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCE_KINDS",
    "VERSION",
    "AuthType",
    "Condition",
    "Destination",
    "EventFilter",
    "EventFilterSpec",
    "EventType",
    "EventTypeSpec",
    "ObjectMeta",
    "Operator",
    "Resource",
    "Rule",
    "SecretKeyRef",
    "Webhook",
    "WebhookSpec",
    "format_validation_error",
    "parse_duration",
]
