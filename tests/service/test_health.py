"""GET /api/health: anonymous, no detail an attacker can use."""

from tests.conftest import Api


def test_health_is_healthy_when_dependencies_answer(any_api: Api):
    response = any_api.call("GET", "/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}
