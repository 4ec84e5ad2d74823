"""Reading collections page by page: plain paging and delta queries (docs/graph-facts.md, "Delta query").

Both stream: one page is held at a time, so memory stays flat however large the directory. Caller headers
(Prefer: odata.maxpagesize, return=minimal) are sent on every page, as Graph expects; query parameters only
on the first request, because next and delta links already carry the original query.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any, Protocol

from .errors import GraphError


class PageReader(Protocol):
    """What paging needs from the client: one GET of a page, with its retries, as a JSON object."""

    def get(
        self, path_or_url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]: ...


def iter_pages_raw(
    client: PageReader, path: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None
) -> Iterator[dict[str, Any]]:
    """Each page as Graph returned it (value, @odata.nextLink, @odata.deltaLink)."""
    url: str | None = path
    first = True
    while url:
        page = client.get(url, params=params if first else None, headers=headers)
        first = False
        yield page
        url = page.get("@odata.nextLink")


def iter_items(
    client: PageReader, path: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None
) -> Iterator[dict[str, Any]]:
    for page in iter_pages_raw(client, path, params, headers):
        yield from page.get("value") or []


class Delta(Iterator[dict[str, Any]]):
    """Iterate a delta query; afterwards `delta_link` holds the link for the next round.

    Items may repeat (Graph replays) and removed objects come as {"id", "@removed": {...}}: the caller's
    processing is idempotent. An expired or unknown token raises DeltaTokenExpired (from the client), and
    the caller starts again with the plain delta path. `delta_link` stays None until the walk is complete,
    so a walk that failed halfway never hands out a link that would skip changes.
    """

    def __init__(
        self,
        client: PageReader,
        path_or_delta_link: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        if params and ("$deltatoken=" in path_or_delta_link or "$skiptoken=" in path_or_delta_link):
            raise ValueError("a delta link already carries its query; pass no params with it")
        self.delta_link: str | None = None
        self.pages = 0
        self._pages = iter_pages_raw(client, path_or_delta_link, params, headers)
        self._items: Iterator[dict[str, Any]] = iter(())
        self._final_link: str | None = None

    def __iter__(self) -> Delta:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            item = next(self._items, None)
            if item is not None:
                return item
            if self._final_link is not None:
                # Only now, with every item handed over, is the new link safe to store.
                self.delta_link, self._final_link = self._final_link, None
                raise StopIteration
            page = next(self._pages)
            self.pages += 1
            self._items = iter(page.get("value") or [])
            link = page.get("@odata.deltaLink")
            if link:
                self._final_link = str(link)
            elif not page.get("@odata.nextLink"):
                raise GraphError(
                    200, "MissingDeltaLink", "a delta page had neither @odata.nextLink nor @odata.deltaLink"
                )

    def batches(self, size: int) -> Iterator[list[dict[str, Any]]]:
        """The items in lists of at most `size`, a list never waiting for a page beyond the one that arrived.

        A caller that stores or writes what it reads can start on a page while Graph prepares the next.
        """
        while True:
            batch = list(islice(self._items, size))
            if not batch:
                first = next(self, None)  # the next page (or the end of the walk, which sets delta_link)
                if first is None:
                    return
                batch = [first, *islice(self._items, size - 1)]
            yield batch
