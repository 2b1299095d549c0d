"""The Kafka bus (aiokafka): idempotent producer with acks=all, consumer groups with manual commits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from leadrelay.bus import TopicPartition as TP
from leadrelay.events import Record, all_topics
from leadrelay.logging import get_logger
from leadrelay.unavailable import Unavailable, within

log = get_logger("leadrelay.bus.kafka")


class KafkaBus:
    def __init__(
        self, bootstrap_servers: str, client_id: str = "leadrelay", linger_ms: int = 5, prefix: str = ""
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.linger_ms = linger_ms
        # Topic and group names are constants in the code; the prefix maps them onto a shared cluster.
        self.prefix = prefix
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,  # implies acks="all": no duplicates or reordering on producer retries
            acks="all",
            linger_ms=self.linger_ms,
            request_timeout_ms=30000,
        )

    async def start(self) -> None:
        """Start the producer; with no broker reachable, keep trying in the background (publishing
        raises :class:`Unavailable` meanwhile), so a service starts while the broker is down."""
        try:
            await self._start_producer()
        except Exception as exc:
            self.last_error = repr(exc)
            log.warning("kafka_unreachable_at_start", error=repr(exc), retrying=True)
            self._starting = asyncio.create_task(self._keep_starting(), name="kafka-producer-start")

    async def _start_producer(self) -> None:
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        self.last_error = None

    async def _keep_starting(self) -> None:
        delay = 0.5
        while self._producer is None:
            await asyncio.sleep(delay)
            try:
                await self._start_producer()
                log.info("kafka_reachable", producer="started")
            except Exception as exc:
                self.last_error = repr(exc)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starting
            self._starting = None
        if self._producer is not None:
            # Flushes what is in flight; bounded, as with no broker it would wait out every timeout.
            try:
                await within(10, self._producer.stop())
            except TimeoutError:
                log.warning("kafka_producer_stop_timed_out", seconds=10)
            self._producer = None

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise Unavailable("kafka", f"no Kafka broker reachable yet: {self.last_error or 'starting'}")
        return self._producer

    async def ping(self) -> None:
        producer = self._started()
        await within(3, producer.client.fetch_all_metadata())
        if not producer.client.cluster.brokers():
            raise Unavailable("kafka", "no Kafka broker reachable")

    async def publish(self, records: Sequence[Record]) -> None:
        producer = self._started()
        futures = [
            await producer.send(self.prefix + r.topic, value=r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        if futures:
            await asyncio.gather(*futures)

    async def read_topic(self, topic: str) -> list[Record]:
        """Every record now on ``topic``, partition by partition, without joining a group (for tools:
        dead-letter topics are small)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=f"{self.client_id}-reader",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.prefix + topic)
            if partitions is None:
                await consumer._client.force_metadata_update()  # a topic not yet in the cached metadata
                partitions = consumer.partitions_for_topic(self.prefix + topic)
            if not partitions:
                raise ValueError(f"unknown topic {topic!r}")
            tps = [TopicPartition(self.prefix + topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[Record] = []
            for tp in tps:
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    for m in batch.get(tp, []):
                        out.append(_record(tp, m, self.prefix))
            return out
        finally:
            await consumer.stop()

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        return KafkaConsumer(self.bootstrap_servers, f"{self.client_id}-{group}", group, list(topics), self.prefix)


class KafkaConsumer:
    def __init__(self, bootstrap_servers: str, client_id: str, group: str, topics: list[str], prefix: str = "") -> None:
        self._prefix = prefix
        self._consumer = AIOKafkaConsumer(
            *(prefix + t for t in topics),
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=prefix + group,
            enable_auto_commit=False,  # commit only after the work is durable
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=300000,
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def getmany(self, max_records: int, timeout_ms: int) -> list[Record]:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [_record(tp, m, self._prefix) for tp, messages in batches.items() for m in messages]

    async def commit(self, offsets: dict[TP, int]) -> None:
        if offsets:
            await self._consumer.commit(
                {TopicPartition(self._prefix + t, p): OffsetAndMetadata(o, "") for (t, p), o in offsets.items()}
            )

    async def rewind(self) -> None:
        for tp in self._consumer.assignment():
            committed = await self._consumer.committed(tp)
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    async def lag(self) -> int | None:
        assignment = list(self._consumer.assignment())
        if not assignment:
            return 0
        ends = await self._consumer.end_offsets(assignment)
        total = 0
        for tp in assignment:
            committed = await self._consumer.committed(tp)
            total += max(0, ends[tp] - (committed or 0))
        return total


def _record(tp: TopicPartition, m: ConsumerRecord[bytes, bytes], prefix: str) -> Record:
    return Record(
        topic=tp.topic.removeprefix(prefix),
        key=m.key,
        value=m.value if m.value is not None else b"",
        headers=tuple((k, v if v is not None else b"") for k, v in m.headers),
        partition=tp.partition,
        offset=m.offset,
    )


async def create_topics(
    bootstrap_servers: str,
    topics: dict[str, int] | None = None,
    prefix: str = "",
    replication_factor: int = 1,
    timeout: float = 60,
) -> list[str]:
    """Create every topic Leadrelay uses (idempotent). Returns the names it created."""
    wanted = {prefix + t: n for t, n in (topics or all_topics()).items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name=t, num_partitions=n, replication_factor=replication_factor)
            for t, n in wanted.items()
            if t not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return [t.name for t in new]
    finally:
        await admin.close()
