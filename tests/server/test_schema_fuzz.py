"""schemathesis against the server's own OpenAPI document: generated requests for every
operation (valid and not) never get a 5xx. A few examples per operation keep it short;
replies are capped at a few tokens so generated ``max_tokens`` values cost nothing."""

from __future__ import annotations

from collections import Counter

import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, settings

from tests.server.conftest import StartServer

EXAMPLES = 4


def test_generated_requests_never_get_a_5xx(start_server: StartServer) -> None:
    running = start_server(max_tokens_cap=4, max_queue=256)
    document = httpx.get(f"{running.root}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), derandomize=True)
        @hypothesis.given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            nonlocal ran
            ran += 1
            response = case.call(base_url=running.root, timeout=120)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:300]}\n"
                                f"{case.as_curl_command()}")

        check()
    print(f"{ran} generated requests over {len(document['paths'])} paths: {dict(statuses)}")
    assert ran >= EXAMPLES * len(document["paths"])
    assert failures == []
    assert any(200 <= s < 300 for s in statuses)  # some generated requests were served
