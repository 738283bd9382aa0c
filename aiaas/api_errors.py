"""Every API error in OpenAI's shape: {"error": {"message", "type", "code", "param"}}."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(status_code: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    error_type = ERROR_TYPES.get(
        status_code, "server_error" if status_code >= 500 else "invalid_request_error"
    )
    return {"error": {"message": message, "type": error_type, "code": code, "param": param}}


def first_validation_error(detail: Any, path: str = "") -> tuple[str, str | None, str]:
    """(message, param, code) of the first error in a nested DRF ValidationError detail."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        if isinstance(key, int):  # a list element, as ListField reports it
            return first_validation_error(value, f"{path}[{key}]")
        field = "" if key == "non_field_errors" else str(key)
        return first_validation_error(value, f"{path}.{field}".strip(".") if field else path)
    if isinstance(detail, list) and detail:
        return first_validation_error(detail[0], path)
    code = getattr(detail, "code", "invalid")
    message = f"{path}: {detail}" if path else str(detail)
    return message, path or None, code


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # DRF answers Django's own Http404 and PermissionDenied too; shape them like the rest.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # Django's handler500 for urls_api answers in the same shape
    if isinstance(exc, exceptions.ValidationError):
        message, param, code = first_validation_error(exc.detail)
        response.data = error_body(response.status_code, message, code, param)
        return response
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        message = str(detail if not isinstance(detail, (dict, list)) else first_validation_error(detail)[0])
        code = getattr(detail, "code", None) or exc.default_code
        if response.status_code == status.HTTP_401_UNAUTHORIZED and code == "not_authenticated":
            code = "missing_api_key"
        response.data = error_body(response.status_code, message, code)
    return response


def json_error_view(status_code: int, message: str, code: str):  # type: ignore[no-untyped-def]
    def view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
        return JsonResponse(error_body(status_code, message, code), status=status_code)

    return view


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Django's 400s on the API: a body over the size limit is a 413, not a 400."""
    if isinstance(exception, RequestDataTooBig):
        message = f"The request body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        return JsonResponse(error_body(413, message, "request_too_large"), status=413)
    return JsonResponse(error_body(400, "The request could not be read.", "bad_request"), status=400)


@csrf_exempt
def unknown_url_view(request: HttpRequest, path: str = "") -> JsonResponse:
    """The API URLConf's last route: any other URL, a malformed id included, is a JSON 404.

    A route rather than handler404, which DEBUG replaces with Django's HTML page;
    CSRF-exempt so that a POST gets this 404 rather than a CSRF page.
    """
    message = f"Unknown URL: {request.method} {request.path}"
    return JsonResponse(error_body(404, message, "unknown_url"), status=404)
