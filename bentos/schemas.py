"""Request and response types of the service; BentoML builds the OpenAPI schema from them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

UserId = Annotated[str, Field(min_length=1, max_length=256, description="External user id.")]
BookId = Annotated[str, Field(min_length=1, max_length=256, description="External book id.")]
# Strict: JSON true and "5" are rejected instead of being served as k=1 and k=5.
ListSize = Annotated[
    int, Field(strict=True, ge=1, le=100, description="Number of books to return.")
]
Placement = Literal["home", "book", "cart"]
Source = Literal["model", "previous_model", "popular", "new"]


class RecommendRequest(BaseModel):
    """Body of POST /recommend; an unknown field (e.g. "K") is rejected with 400."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    k: ListSize = 10
    placement: Placement = "home"
    book_id: BookId | None = None


class SimilarRequest(BaseModel):
    """Body of POST /similar; an unknown field is rejected with 400."""

    model_config = ConfigDict(extra="forbid")

    book_id: BookId
    k: ListSize = 10
    user_id: UserId | None = None


class Item(BaseModel):
    """One recommended book."""

    item_id: str
    title: str
    score: float = Field(description="Ranking score of the list it came from; higher is better.")
    reason: str = Field(
        description="Why the book is shown. Starts with one of: same author, same series, "
        "similar shelves, readers with similar taste, popular now, new; the first three may "
        "name the author, series or shelves after a colon."
    )


class RecommendResponse(BaseModel):
    """A recommendation list and where it came from."""

    request_id: str = Field(description="Id of this response in the impression log.")
    variant: str = Field(description="Experiment variant of the user ('' without a user).")
    source: Source = Field(description="Step of the fallback chain that produced the list.")
    model_version: str
    placement: Placement
    items: list[Item]


class Info(BaseModel):
    """Served versions, load times, load errors and counters."""

    started_at: str
    ready: bool
    current: dict[str, Any] | None
    previous: dict[str, Any] | None
    fallback_lists: dict[str, Any] | None
    load_errors: dict[str, str]
    counters: dict[str, int]
    impressions: dict[str, int] | None
    unavailable_books: int
    serving_pointer: str | None
    rate_limited: int
