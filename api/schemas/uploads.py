"""Request and response shapes of direct uploads: reserve a slot, then send the bytes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["UploadCreate", "UploadPublic", "UploadReceived"]


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: true is not one byte, nor "5" or 5.0 a size (FastAPI validates the parsed JSON).
    size_bytes: int = Field(gt=0, strict=True, description="exact size of the file to upload")
    filename: str | None = Field(default=None, max_length=255)


class UploadPublic(BaseModel):
    upload_id: uuid.UUID
    url: str = Field(description="send the file's bytes here, with the method and headers given")
    method: Literal["PUT"]
    headers: dict[str, str] = Field(description="headers to send with the bytes (never the API key)")
    send_api_key: bool = Field(
        description="true when the URL is this API's own upload route: send the usual "
        "'Authorization: Bearer <key>' header with the bytes; false for a presigned storage URL, "
        "whose signature is the credential (do not send the key there)"
    )
    expires_at: datetime
    max_bytes: int


class UploadReceived(BaseModel):
    upload_id: uuid.UUID
    size_bytes: int
    container: str
