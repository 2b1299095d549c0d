# Leadrelay. The two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PACKAGES := -e shared -e services/intake -e services/scoring -e services/routing -e services/sla-monitor -e services/feedback \
	-e services/console

KAFKA_PORT ?= 9092
PG_PORT    ?= 55432
export KAFKA_PORT PG_PORT

.PHONY: lock audit run test test-unit test-fast contract install infra infra-stop browser run-distributed stop-distributed lint schemas bench soak clean

## run: all five services embedded on http://127.0.0.1:8000 (SQLite, in-process bus)
run: $(STAMP)
	LEADRELAY_LOG_FORMAT=$${LEADRELAY_LOG_FORMAT:-console} $(BIN)/leadrelay run

## test: lint, then every test on real Kafka and PostgreSQL (installs and starts them), the console's in Chromium
test: lint infra browser
	LEADRELAY_REQUIRE_INFRA=1 LEADRELAY_TEST_RESTART_INFRA=1 \
	LEADRELAY_TEST_DATABASE_URL=$$(deploy/postgres.sh url) \
	LEADRELAY_TEST_KAFKA=127.0.0.1:$(KAFKA_PORT) \
	$(BIN)/pytest $(PYTEST_ARGS)

## test-unit: the house rules (CONTRIBUTING.md) and the pure tests: domain rules, parsing, the rules
## file, the event contract, the console's views; no database, no bus, seconds
UNIT_PATHS := tests/architecture tests/intake/test_domain.py tests/intake/test_segment.py tests/scoring/test_domain.py \
	tests/routing/test_domain.py tests/feedback/test_domain.py tests/sla_monitor/test_domain.py tests/shared/test_events.py \
	tests/shared/test_inputs.py tests/shared/test_emails.py tests/shared/test_rules.py tests/shared/test_rules_intake.py \
	tests/shared/test_rules_people_notifications.py tests/console/test_console_unit.py
test-unit: $(STAMP)
	$(BIN)/pytest -q $(UNIT_PATHS) $(PYTEST_ARGS)

## test-fast: the inner loop (about three minutes on two cores, nothing to start): unit tests, the
## embedded bus, and the integration suite on SQLite; the Kafka and PostgreSQL variants are
## deselected. Three pytest-xdist workers: most of these tests wait on timers and polls, not the CPU.
FAST_PATHS := tests/architecture tests/docs tests/intake tests/scoring tests/routing tests/sla_monitor tests/feedback tests/shared tests/integration \
	tests/console
test-fast: $(STAMP)
	env -u LEADRELAY_TEST_DATABASE_URL -u LEADRELAY_TEST_KAFKA -u LEADRELAY_REQUIRE_INFRA \
	$(BIN)/pytest -q -n $${TEST_WORKERS:-3} -k "not postgres and not kafka" $(FAST_PATHS) $(PYTEST_ARGS)
## contract: only the API contract: schemathesis (--checks all) against the embedded server, the AsyncAPI
## document against the code (no Kafka or PostgreSQL needed)
contract: $(STAMP)
	$(BIN)/pytest tests/contract $(PYTEST_ARGS)

install: $(STAMP)

# Every third-party package comes from requirements-dev.lock, pinned with its hashes; Leadrelay's
# own packages are then installed from this checkout without resolving anything more, and
# `pip check` fails if the lock misses a dependency (run `make lock` after changing one).
$(STAMP): shared/pyproject.toml $(wildcard services/*/pyproject.toml) requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation $(PACKAGES)
	$(BIN)/pip check
	touch $(STAMP)

## lock: resolve requirements.in (and requirements-dev.txt) into the hash-pinned lock files
LOCAL_PACKAGES := leadrelay leadrelay-intake leadrelay-scoring leadrelay-routing leadrelay-sla-monitor \
	leadrelay-feedback leadrelay-console
LOCK := $(BIN)/uv pip compile --universal --python-version 3.11 --generate-hashes --quiet \
	$(foreach p,$(LOCAL_PACKAGES),--no-emit-package $(p))
lock: $(STAMP)
	$(LOCK) requirements.in -o requirements.lock
	$(LOCK) requirements.in requirements-dev.txt -o requirements-dev.lock

## audit: known vulnerabilities in the locked packages (pip-audit --strict: fails, too, when a package
## cannot be checked, e.g. the advisory database is not reachable)
audit: $(STAMP)
	$(BIN)/pip-audit --strict --require-hashes --disable-pip -r requirements.lock
	$(BIN)/pip-audit --strict --require-hashes --disable-pip -r requirements-dev.lock

## infra: start PostgreSQL and Kafka locally, create the topics; build Toxiproxy (the network-fault test's)
infra: $(STAMP)
	deploy/postgres.sh start
	deploy/kafka.sh start
	deploy/toxiproxy.sh build
	LEADRELAY_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) $(BIN)/leadrelay create-topics

## browser: Debian's Chromium (and CJK fonts) for the console's browser tests, if missing
browser:
	deploy/chromium.sh install

infra-stop:
	-deploy/kafka.sh stop
	-deploy/postgres.sh stop

## run-distributed: Kafka, PostgreSQL and each service as its own process (ports 8001-8005)
run-distributed: infra
	deploy/run-distributed.sh start

stop-distributed:
	deploy/run-distributed.sh stop

LINT_PATHS := shared services tests $(wildcard bench)
SOURCES := shared/leadrelay services/intake/intake services/scoring/scoring services/routing/routing \
	services/sla-monitor/sla_monitor services/feedback/feedback services/console/console

## bench: throughput and latency on real Kafka and PostgreSQL, against baselines (docs/performance.md);
## BENCH_ARGS=--quick for a short smoke run. Results go to bench/results/.
bench: $(STAMP) infra
	$(BIN)/python -m bench $(BENCH_ARGS)

## soak: about 35 minutes: 20,000 leads at a steady rate while every consumer is SIGKILLed 21 times,
## the broker killed twice, PostgreSQL restarted twice and the network misbehaves (Toxiproxy); then
## every invariant over every lead. Its own Kafka (39092-39095), PostgreSQL (58432-58433) and Toxiproxy
## (38474): a running `make test` is not disturbed. Writes its table to docs/reliability.md.
## SOAK_ARGS="--leads 300 --kills 2 --spell 20 --no-write" for a short run.
soak: $(STAMP)
	$(BIN)/python -m tests.e2e.soak $(SOAK_ARGS)

## lint: ruff (curated rules, format) and mypy --strict on the sources
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy $(SOURCES)

## schemas: regenerate the events' JSON Schemas (shared/leadrelay/schemas) and the AsyncAPI document
## (shared/leadrelay/asyncapi.json)
schemas: $(STAMP)
	$(BIN)/leadrelay schemas
	$(BIN)/leadrelay asyncapi

clean:
	rm -rf .leadrelay .run
