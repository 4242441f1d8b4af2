"""The ACS trusted token service: every function, its trigger and route, on one screen.

Handlers live in shared/api.py (HTTP) and shared/cleanup.py (the sweep); nothing here does work,
and the SDK clients (and the OIDC verifier) are built on first use, not at import.
"""

import logging

import azure.functions as func

from shared import api, telemetry
from shared.garbage_collection import settle_after_import
from shared.startup import check_settings

telemetry.configure()  # Application Insights, only when its connection string is set
check_settings()  # one error line now, naming the setting, if the app cannot serve as configured
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
settle_after_import()  # fewer, cheaper garbage collections under load (shared/garbage_collection.py)


@app.route(route="token", methods=["POST"])
async def issue_token(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.issue_token(req)


@app.route(route="token/revoke", methods=["POST"])
async def revoke_tokens(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.revoke_tokens(req)


@app.route(route="identity", methods=["GET"])
async def get_identity(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.get_identity(req)


@app.route(route="identity", methods=["DELETE"])
async def delete_identity(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.delete_identity(req)


@app.route(route="teams/token", methods=["POST"])
async def exchange_teams_token(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.exchange_teams_token(req)


@app.route(route="guest/token", methods=["POST"])
async def issue_guest_token(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.issue_guest_token(req)


@app.route(route="manage/deleted-users", methods=["POST"])
async def mark_deleted_users(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.mark_deleted_users(req)


@app.route(route="health", methods=["GET"])
async def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with telemetry.invocation(context):
        return await api.health(req)


@app.timer_trigger(schedule="%CLEANUP_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
async def cleanup_deleted_users(timer: func.TimerRequest, context: func.Context) -> None:
    from shared.cleanup_job import run_cleanup

    with telemetry.invocation(context):
        if timer.past_due:
            logging.getLogger(__name__).info("cleanup is running late")
        await run_cleanup()
