"""Pydantic v2 models of the API's requests and responses, with OpenAPI examples."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from es_app.domain.input_rules import checked_text


def _printable(value: str) -> str:
    if any((ord(c) < 32 and c not in "\t") or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[str, Field(max_length=1000), AfterValidator(_printable)]
UserText = Annotated[Text, BeforeValidator(checked_text)]  # a name, email or phone (docs/input.md)

USER_ID_EXAMPLE = "user-3f6c2a4e-8d1b-4c55-9a57-0d2f6b1e9c10"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- commands ---------------------------------------------------------------
class RegisterUser(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"name": "Sarah Connor", "email": "sarah@example.org", "phone": "+1 555 0100"}]})

    name: UserText
    email: UserText
    phone: UserText | None = None


class ChangeUser(_Strict):
    """Fields left out stay as they are; `phone: null` clears the phone."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Sarah Reese"}]})

    name: UserText | None = None
    email: UserText | None = None
    phone: UserText | None = None

    @model_validator(mode="after")
    def _something(self) -> ChangeUser:
        if not self.model_fields_set:
            raise ValueError("give at least one of name, email, phone")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name must not be null")
        if "email" in self.model_fields_set and self.email is None:
            raise ValueError("email must not be null")
        return self


class DeactivateUser(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "left the company"}]})

    reason: Text | None = None


class NoFields(_Strict):
    """An optional body with no fields (`{}`): unknown fields are refused, as on every command."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}]})


class CorrectUser(_Strict):
    """Fixes a wrong value without rewriting history; the event says who and why.

    `value` follows the field's rules in PATCH: a string for name and email, a string or null for
    phone, true or false for active.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"field": "email", "value": "sarah@example.org", "reason": "typo at sign-up"}]})

    field: Literal["name", "email", "phone", "active"]
    value: Annotated[Any, WithJsonSchema({"anyOf": [{"type": "string", "maxLength": 1000}, {"type": "boolean"},
                                                     {"type": "null"}]})]
    reason: Text

    @field_validator("value")
    @classmethod
    def _value_fits_field(cls, value: Any, info: ValidationInfo) -> Any:
        field = info.data.get("field")
        if field is None:  # the field itself is invalid: that error is enough
            return value
        if field == "active":
            if not isinstance(value, bool):
                raise PydanticCustomError("value_error", "active takes true or false")
            return value
        if isinstance(value, bool):
            raise PydanticCustomError("value_error", "{field} takes a string" + (" or null" if field == "phone"
                                                                              else ""), {"field": field})
        try:
            checked = ChangeUser.model_validate({field: value})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise PydanticCustomError("value_error", "{field}: {reason}", {"field": field, "reason": reason}) \
                from None
        return getattr(checked, field)


class CommandResult(BaseModel):
    """Where the command's events landed: the stream, its new version and the global position."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"id": USER_ID_EXAMPLE, "version": 2, "position": 1041}]})

    id: str
    version: int
    position: int


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={
        "examples": [{"detail": "If-Match 3 is stale: the user is at version 4", "current_version": 4}]})

    detail: str


# -- queries ----------------------------------------------------------------
class ReadModelInfo(BaseModel):
    """How fresh the answer is: the read model's position and whether it lags what was asked or written."""

    position: int
    stale: bool


class UserSummary(BaseModel):
    id: str
    name: str
    email: str
    phone: str | None
    active: bool
    version: int
    created_at: str | None = None
    updated_at: str | None = None


class UserView(UserSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": USER_ID_EXAMPLE, "name": "Sarah Reese", "email": "sarah@example.org", "phone": None,
        "active": True, "version": 2, "created_at": "2026-11-28T09:00:00+00:00",
        "updated_at": "2026-11-28T09:05:00+00:00", "read_model": {"position": 1041, "stale": False}}]})

    read_model: ReadModelInfo


class UserPage(BaseModel):
    """A page of users; pass `next_cursor` back as `cursor` for the next one (null at the end)."""

    items: list[UserSummary]
    next_cursor: str | None
    read_model: ReadModelInfo


SortKey = Literal["name", "-name", "email", "-email", "created_at", "-created_at", "id", "-id"]


# -- audit and time travel --------------------------------------------------
class EventOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "event_id": "0b5c4f1e-2f51-4d7c-a2f4-5a9e1a2b3c4d", "stream_id": USER_ID_EXAMPLE,
        "type": "UserNameChanged", "version": 2, "position": 1041, "data": {"name": "Sarah Reese"},
        "metadata": {"actor": "alice", "correlation_id": "c-1", "causation_id": "c-1",
                     "occurred_at": "2026-11-28T09:05:00+00:00"},
        "recorded_at": "2026-11-28T09:05:00+00:00"}]})

    event_id: str
    stream_id: str
    type: str
    version: int
    position: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime


class HistoryPage(BaseModel):
    id: str
    events: list[EventOut]
    next_after_version: int | None


class UserState(BaseModel):
    """The user replayed from its events up to `version`."""

    id: str
    name: str
    email: str
    phone: str | None
    active: bool
    deleted: bool
    version: int
    created_at: str | None = None
    updated_at: str | None = None
    extra: dict[str, Any] = {}


class EventRef(BaseModel):
    event_id: str
    type: str
    version: int
    position: int
    occurred_at: str | None
    actor: str | None = None


class FieldChange(BaseModel):
    field: str
    before: Any
    after: Any
    events: list[EventRef]


class UserDiff(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": USER_ID_EXAMPLE, "from_version": 1, "to_version": 3,
        "changes": [{"field": "name", "before": "Sarah Connor", "after": "Sarah Reese", "events": [
            {"event_id": "0b5c4f1e-2f51-4d7c-a2f4-5a9e1a2b3c4d", "type": "UserNameChanged", "version": 2,
             "position": 1041, "occurred_at": "2026-11-28T09:05:00+00:00", "actor": "alice"}]}]}]})

    id: str
    from_version: int
    to_version: int
    changes: list[FieldChange]


class FeedPage(BaseModel):
    """Events of the global feed after `after`; continue with `after=next_after`."""

    events: list[EventOut]
    next_after: int
    head_position: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    mode: Literal["embedded", "servers"]
    database: str
    head_position: int | None = None
    read_model_position: int | None = None
