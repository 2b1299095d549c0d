"""The HTTP ceiling: a bare FastAPI app that only validates the same bodies and answers 202.

Same routes as intake, one uvicorn process with the same settings as `leadrelay serve`
(uvloop and httptools when installed, no access log), no broker, no database.
Run as ``python -m bench.bare --port P``.
"""

from __future__ import annotations

import argparse
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

NAMESPACE = uuid.UUID("6f1b6d0e-6c1e-4d8e-9a55-3b7f2c9d0a11")


class FormBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # custom fields, as intake keeps them

    email: str = Field(max_length=320)
    first_name: str | None = Field(default=None, max_length=1000)
    last_name: str | None = Field(default=None, max_length=1000)
    company: str | None = Field(default=None, max_length=1000)
    job_title: str | None = Field(default=None, max_length=1000)
    phone: str | None = Field(default=None, max_length=1000)
    country: str | None = Field(default=None, max_length=1000)
    company_size: int | str | None = None
    industry: str | None = Field(default=None, max_length=1000)
    page_url: str | None = Field(default=None, max_length=2000)


class EventBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    email: str | None = None
    url: str | None = Field(default=None, max_length=2000)
    properties: dict[str, str] = Field(default_factory=dict)


class Accepted(BaseModel):
    lead_id: str
    event_id: str


app = FastAPI(title="bare")


@app.post("/v1/forms/{form_id}/submissions", status_code=202, response_model=Accepted)
async def submit(form_id: str, body: FormBody) -> Accepted:
    return Accepted(lead_id=str(uuid.uuid5(NAMESPACE, body.email.lower())), event_id=str(uuid.uuid4()))


@app.post("/v1/events", status_code=202, response_model=Accepted)
async def event(body: EventBody) -> Accepted:
    return Accepted(lead_id=str(uuid.uuid5(NAMESPACE, (body.email or "").lower())), event_id=str(uuid.uuid4()))


@app.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
