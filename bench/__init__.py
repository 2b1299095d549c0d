"""Leadrelay's benchmark: `make bench` (full, about 22 min) or `make bench BENCH_ARGS=--quick` (smoke run).

Drives form submissions through the intake HTTP API of a distributed stack (one
process per service, on the real Kafka broker and PostgreSQL, isolated by a
unique topic/group and schema prefix), open loop, and compares it with
baselines doing the same hops with no work (plain aiokafka relays), with an
inbox/outbox transaction per batch, and with a bare FastAPI endpoint.
See docs/performance.md for what each figure means.
"""
