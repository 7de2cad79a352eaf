"""HTTP routes of feeds: read the request, call one :class:`~services.feeds.service.Feeds` method, answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, InvalidRequest
from services.common.public_reads import client_address
from services.feeds.deps import CredentialDep, FeedsDep, OpenReaderDep, ScenarioDep
from services.feeds.open_data import SnapshotFormat
from services.feeds.schemas import (
    AckRequest,
    AckResult,
    RecordBatch,
    ReplayRequest,
    ReplayResult,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionDetail,
    SubscriptionPage,
    WebhookDeliveryPage,
)
from services.feeds.service import Feeds
from services.feeds.streams import Stream

router = APIRouter(prefix="/v1", tags=["subscriptions"])


@router.post(
    "/subscriptions",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionCreated,
    summary="Subscribe the calling scenario to a dataset it holds an active grant for",
    responses={403: {"description": "No grant, or the grant does not allow delivery now (says why)"}},
)
def create_subscription(
    payload: SubscriptionCreate, feeds: FeedsDep, scenario: ScenarioDep
) -> SubscriptionCreated:
    return feeds.create_subscription(principal=scenario, payload=payload)


@router.get(
    "/subscriptions",
    response_model=SubscriptionPage,
    summary="The calling scenario's subscriptions (an admin's: every scenario's)",
)
def list_subscriptions(feeds: FeedsDep, scenario: ScenarioDep) -> SubscriptionPage:
    return feeds.list_subscriptions(principal=scenario)


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionDetail,
    summary="A subscription with its grant, committed position and lag per partition",
)
def get_subscription(subscription_id: str, feeds: FeedsDep, scenario: ScenarioDep) -> SubscriptionDetail:
    return feeds.get_subscription(principal=scenario, subscription_id=subscription_id)


@router.post(
    "/subscriptions/{subscription_id}/pause", response_model=SubscriptionDetail, summary="Stop delivery"
)
def pause_subscription(subscription_id: str, feeds: FeedsDep, scenario: ScenarioDep) -> SubscriptionDetail:
    return feeds.set_status(principal=scenario, subscription_id=subscription_id, status="paused")


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=SubscriptionDetail,
    summary="Deliver again (a paused webhook is tried again at once)",
)
def resume_subscription(subscription_id: str, feeds: FeedsDep, scenario: ScenarioDep) -> SubscriptionDetail:
    return feeds.set_status(principal=scenario, subscription_id=subscription_id, status="active")


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a subscription and its committed positions",
)
def delete_subscription(subscription_id: str, feeds: FeedsDep, scenario: ScenarioDep) -> Response:
    feeds.delete_subscription(principal=scenario, subscription_id=subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidRequest(
            Sentence(N_("%(name)s must be between %(low)g and %(high)g"), name=name, low=low, high=high),
            errors=[
                FieldError(
                    path=f"/query/{name}",
                    rule="range",
                    message=Sentence(
                        N_("%(value)g is not in %(low)g..%(high)g"), value=value, low=low, high=high
                    ),
                )
            ],
        )


@router.get(
    "/subscriptions/{subscription_id}/records",
    response_model=RecordBatch,
    summary="Long-poll: the next records as the grant lets the scenario see them, and a cursor",
    description=(
        "Waits up to `wait` seconds for the first record. Records come again (same `id`) until "
        "a cursor at or after them is acknowledged. 403 when the grant stops allowing delivery "
        "(revoked, suspended, expired), 429 when its daily quota is used up, 401 access-withdrawn "
        "when the key is revoked or the scenario suspended while the request waits."
    ),
)
def read_records(
    subscription_id: str,
    feeds: FeedsDep,
    scenario: ScenarioDep,
    credential: CredentialDep,
    max: Annotated[int | None, Query(description="Most records in the batch")] = None,
    wait: Annotated[float, Query(description="Seconds to wait for the first record")] = 0.0,
) -> Response:
    settings = feeds.settings
    max_records = settings.default_batch if max is None else max
    _check_range("max", max_records, 1, settings.max_batch)
    _check_range("wait", wait, 0, settings.max_wait_s)
    batch = feeds.poll(
        principal=scenario,
        subscription_id=subscription_id,
        max_records=max_records,
        wait_s=wait,
        credential=credential,
    )
    return Response(batch.body(), media_type="application/json")


@router.get(
    "/open/{dataset_id}/snapshot",
    tags=["open data"],
    summary="Open data without a key: the latest records of an open dataset, as NDJSON or CSV",
    description=(
        "For a dataset that is published, publicly listed and classified `open`: its latest `limit` "
        "records (newest last; at most `SNAPSHOT_MAX_RECORDS`), every field its contract marks "
        "sensitive left out. No key needed (a key sent must be good). Any other dataset, hidden, "
        "conditional, restricted, unpublished or unknown, gets one refusal, 404 with a key or "
        "without. Each client address (a caller with a key: its principal) may download "
        "`SNAPSHOT_REQUESTS_PER_MINUTE` snapshots a minute, 429 with Retry-After beyond. Every "
        "snapshot served is metered on platform.usage and entered in the audit trail."
    ),
    responses={
        200: {"content": {"application/x-ndjson": {}, "text/csv": {}}},
        401: {"description": "A wrong or revoked key (never read as no key)"},
        404: {
            "description": "Not an open dataset: hidden, conditional, restricted, unpublished or unknown alike"
        },
        429: {"description": "Too many snapshots from this address; see Retry-After"},
    },
)
def open_snapshot(
    dataset_id: str,
    request: Request,
    feeds: FeedsDep,
    reader: OpenReaderDep,
    limit: Annotated[int | None, Query(description="How many of the latest records")] = None,
    format: Annotated[SnapshotFormat, Query(description="ndjson (one JSON record a line) or csv")] = "ndjson",
) -> Response:
    settings = feeds.settings
    records = settings.snapshot_default_records if limit is None else limit
    _check_range("limit", records, 1, settings.snapshot_max_records)
    snapshot = feeds.open_snapshot(
        dataset_id=dataset_id,
        limit=records,
        format=format,
        address=client_address(request),
        principal=reader,
    )
    return Response(
        snapshot.body,
        media_type=snapshot.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{snapshot.filename}"',
            "X-Citybase-Records": str(snapshot.records),
            "X-Citybase-Withheld-Fields": ",".join(snapshot.withheld),
        },
    )


@router.post(
    "/subscriptions/{subscription_id}/ack",
    response_model=AckResult,
    summary="Acknowledge every record delivered before the cursor",
)
def ack(subscription_id: str, payload: AckRequest, feeds: FeedsDep, scenario: ScenarioDep) -> AckResult:
    return feeds.ack(principal=scenario, subscription_id=subscription_id, cursor=payload.cursor)


@router.post(
    "/subscriptions/{subscription_id}/replay",
    response_model=ReplayResult,
    summary="Move the subscription to offsets or a time within retention (recorded and announced)",
)
def replay(
    subscription_id: str, payload: ReplayRequest, feeds: FeedsDep, scenario: ScenarioDep
) -> ReplayResult:
    return feeds.replay(principal=scenario, subscription_id=subscription_id, to=payload.to)


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=WebhookDeliveryPage,
    summary="The webhook delivery log, newest first",
)
def deliveries(
    subscription_id: str,
    feeds: FeedsDep,
    scenario: ScenarioDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> WebhookDeliveryPage:
    return feeds.deliveries(principal=scenario, subscription_id=subscription_id, limit=limit)


def _stream_threads(request: Request, feeds: Feeds) -> anyio.CapacityLimiter:
    """The threads streams wait in: their own, as many as streams may be open. In the request
    handlers' (anyio's 40 by default), 40 streams waiting for records would leave no thread to
    answer a long-poll, an ack or a new subscription, and a 41st stream would wait for a turn."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "feeds_stream_threads", None)
    if limiter is None:
        limiter = state.feeds_stream_threads = anyio.CapacityLimiter(feeds.settings.max_streams)
    return limiter


async def _events(request: Request, feeds: Feeds, stream: Stream) -> AsyncIterator[bytes]:
    threads = _stream_threads(request, feeds)
    try:
        yield b"retry: 1000\n: connected\n\n"
        while True:
            # One event at a time, produced only once the previous one was written (uvicorn waits
            # for the socket to drain before it takes the next write): a slow client slows its
            # stream down, it never makes feeds read ahead. What one stream holds is bounded by one
            # batch, the transport's high-water mark and the consumer's fetch buffer.
            event = await anyio.to_thread.run_sync(stream.next_event, limiter=threads)
            final, said = event.final, bool(event.text)
            if said:
                yield event.text
                # Nothing keeps a written event while the stream waits for the next one (every
                # open stream would hold its last batch): neither this frame nor Starlette, which
                # holds the last chunk it sent until the next, hence an empty one (nothing is sent).
                del event
                yield b""
            else:
                del event
            if final:
                return
            if not said and await request.is_disconnected():
                return  # the client left: release the partitions now, not at the next write
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close, limiter=threads)
            feeds.metrics.readers.labels("sse").dec()


@router.get(
    "/subscriptions/{subscription_id}/stream",
    summary="Server-Sent Events: batches as `records` events, resumable with Last-Event-ID",
    description=(
        "Each `records` event carries a batch (the long-poll's JSON) and has the batch's cursor "
        "as its id. The stream acknowledges each batch once it was written to the connection (so "
        "the subscription's lag moves as it delivers); a client that lost events on a broken "
        "connection reconnects with `Last-Event-ID`, which commits that cursor (back, if need be) "
        "and reads on after it, so what it did not receive comes again. When the grant is revoked, suspended or "
        "expires, the key the stream was opened with is revoked, the scenario is suspended (or the "
        "subscription is paused or replayed) the stream ends within a second with an `end` event "
        "whose data is the problem saying why. One scenario holds at most `MAX_STREAMS_PER_SCENARIO` "
        "streams in a process (429 too-many-streams beyond)."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request,
    subscription_id: str,
    feeds: FeedsDep,
    scenario: ScenarioDep,
    credential: CredentialDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=8192)] = None,
) -> StreamingResponse:
    opened = await anyio.to_thread.run_sync(
        lambda: feeds.open_stream(
            principal=scenario,
            subscription_id=subscription_id,
            last_event_id=last_event_id,
            credential=credential,
        )
    )
    feeds.metrics.readers.labels("sse").inc()
    return StreamingResponse(
        _events(request, feeds, opened),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
