"""Arbitrary Unicode in every text field of every POST, on the distributed stack (each service its own
process, real Kafka and PostgreSQL) and embedded (SQLite, in-process bus) side by side:

every answer is a 2xx or a 4xx, the same in both; every accepted demo request ends assigned,
with the same contact in both; nothing reaches a dead-letter topic.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadrelay.bus.kafka import create_topics
from leadrelay.events import TOPIC_PARTITIONS, all_topics, dlq_topic
from leadrelay.runtime import load_services
from tests.e2e.distributed import Cluster, cluster
from tests.harness import EXAMPLE, Harness, running, settings_for
from tests.hostile import Post, answer, dead_letters, event_posts, feedback_posts, form_posts

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

EXAMPLES = 150


async def kafka_outcome(bootstrap: str, prefix: str, timeout: float = 90) -> dict[str, int]:
    """Wait until every consumer group has committed everything on its topics (twice in a row,
    a second apart, with no new records: the outbox relays publish right after each commit), then
    return how many records each dead-letter topic holds."""
    groups = {sub.group: list(sub.topics) for svc in load_services() for sub in svc.subscriptions}
    tps = [TopicPartition(prefix + t, p) for t, n in TOPIC_PARTITIONS.items() for p in range(n)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        quiet, last_ends = 0, None
        while quiet < 2:
            assert time.monotonic() < deadline, "the consumer groups did not catch up"
            ends = await consumer.end_offsets(tps)
            behind = 0
            for group, topics in groups.items():
                committed = await admin.list_consumer_group_offsets(prefix + group)
                for tp in tps:
                    if tp.topic.removeprefix(prefix) in topics:
                        done = committed.get(tp)
                        behind += ends[tp] - (done.offset if done is not None else 0)
            quiet = quiet + 1 if behind == 0 and ends == last_ends else 0
            last_ends = ends
            await asyncio.sleep(1)
        dlq = [TopicPartition(prefix + dlq_topic(t), 0) for t in TOPIC_PARTITIONS]
        return {tp.topic: offset for tp, offset in (await consumer.end_offsets(dlq)).items()}
    finally:
        await consumer.stop()
        await admin.close()


def distributed_lead(c: Cluster) -> tuple[str, str]:
    r = c.post(
        "intake", "/v1/forms/demo-request/submissions", json={"email": "rep.test@hostile-input.se", "country": "DE"}
    )
    assert r.status_code == 202, r.text
    lead = r.json()["lead_id"]
    rep = c.wait_for("routing", f"/v1/leads/{lead}/assignment")["rep_id"]
    c.wait_for("feedback", f"/v1/leads/{lead}/feedback")  # feedback learnt of it from Kafka
    return lead, rep


async def embedded_lead(h: Harness) -> tuple[str, str]:
    r = await h.client.post(
        "/v1/forms/demo-request/submissions", json={"email": "rep.test@hostile-input.se", "country": "DE"}
    )
    assert r.status_code == 202, r.text
    lead = r.json()["lead_id"]
    rep = (await h.wait_for(f"/v1/leads/{lead}/assignment"))["rep_id"]
    await h.settle()
    return lead, rep


def test_arbitrary_text_distributed_on_kafka_and_postgres_answers_as_embedded(
    tmp_path: Path, pg_url: str, kafka_bootstrap: str, pg_schema_cleanup: str
) -> None:
    prefix = pg_schema_cleanup.rstrip("_")
    asyncio.run(create_topics(kafka_bootstrap, all_topics(), prefix=f"{prefix}."))
    with cluster(tmp_path, pg_url, kafka_bootstrap, prefix, EXAMPLE) as c, asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        h = runner.run(stack.enter_async_context(running(settings_for(tmp_path / "embedded"))))
        try:
            lead, rep = distributed_lead(c)
            assert runner.run(embedded_lead(h)) == (lead, rep)  # same id, same first rep of the round robin
            to_assign: set[str] = set()
            seen: collections.Counter[tuple[str, int]] = collections.Counter()

            @hsettings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(st.one_of(form_posts(), event_posts(), feedback_posts(lead, rep)))
            def every_post(post: Post) -> None:
                headers = {"content-type": post.content_type}
                distributed = c.post(post.service, post.path, content=post.content, headers=headers)
                embedded = runner.run(h.client.post(post.path, content=post.content, headers=headers))
                assert distributed.status_code < 500, (distributed.status_code, distributed.text, c.tail(post.service))
                assert embedded.status_code < 500, (embedded.status_code, embedded.text)
                assert answer(distributed) == answer(embedded)
                seen[(post.path.split("/")[-1], distributed.status_code)] += 1
                if distributed.status_code == 202 and post.qualifying_lead:
                    to_assign.add(distributed.json()["lead_id"])

            started = time.monotonic()
            every_post()
            print(
                f"{EXAMPLES} examples in {time.monotonic() - started:.0f}s; (route, status): count",
                dict(sorted(seen.items())),
            )
            assert to_assign, "no example was accepted: the strategies send nothing valid"

            for lead_id in sorted(to_assign):
                on_kafka = c.wait_for("routing", f"/v1/leads/{lead_id}/assignment", timeout=60)["handoff"]
                embedded = runner.run(h.wait_for(f"/v1/leads/{lead_id}/assignment"))["handoff"]
                assert on_kafka["contact"] == embedded["contact"]
                assert on_kafka["custom"] == embedded["custom"]
            dead = runner.run(kafka_outcome(kafka_bootstrap, f"{prefix}."))
            assert set(dead.values()) == {0}, dead
            runner.run(h.settle())
            assert dead_letters(h.bus) == []
            print(f"{len(to_assign)} accepted demo requests, all assigned on Kafka and PostgreSQL; no dead letter")
        finally:
            runner.run(stack.aclose())
