"""Schemathesis against the API's own OpenAPI document: generated requests (valid and invalid)
never get a 5xx, and every answer matches the documented status codes and schemas."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers_api import admin_token, make_list, settle  # noqa: F401

EXAMPLES = 30


def test_api_conforms_to_its_document(app, admin_token, celery_worker):
    make_list("Wydarzenia")
    make_list("Rada", public=False)
    saved = {key: app.config[key] for key in ("API_RATE_LIMIT", "SUBSCRIBE_RATE_LIMIT",
                                              "SUBSCRIBE_ADDRESS_RATE_LIMIT")}
    app.config.update({key: "100000 per minute" for key in saved})
    headers = {"Authorization": f"Bearer {admin_token}"}
    try:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                # Valid by the document is not always valid by the rules (an id that exists,
                # a real address), so positive_data_acceptance is left out.
                case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

            check()
    finally:
        app.config.update(saved)
        settle(celery_worker)  # sign-ups queued confirmation mails
