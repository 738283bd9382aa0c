"""Stripe's door into the platform (public host), and the dashboard's usage and
billing pages (tenant host; billing/web/urls.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import stripe
from django.contrib import messages
from django.core.validators import slug_re
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.models import Plan
from billing.models.stripe import LIVE_STATUSES
from billing.selectors import (
    Unavailable,
    UsageGrouping,
    UsagePeriod,
    invoice_preview,
    plan_offers,
    spend_between,
    usage_events_of,
    usage_groups,
    usage_totals,
)
from billing.services import BillingError, create_checkout_session, create_portal_session
from billing.stripe_api import StripeHealth, StripeNotConfiguredError, stripe_health
from billing.web.charts import USAGE_CHARTS, quota_bars
from billing.webhooks import InvalidWebhookError, receive_event, verify_event
from tenants.web.base import PageAccess, manager_page, tenant_page

logger = logging.getLogger(__name__)


@csrf_exempt  # Stripe signs its requests; it has no CSRF token
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Verify, store once, queue, and answer at once: Stripe waits for nothing
    but the 2xx. A request that fails verification writes nothing."""
    try:
        event = verify_event(request.body, request.headers.get("Stripe-Signature"))
    except InvalidWebhookError as error:
        return JsonResponse({"error": {"message": str(error), "type": "invalid_request_error"}}, status=400)
    stored = receive_event(event)
    return JsonResponse({"received": True, "status": stored.status})


@tenant_page
def usage(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """This month's (UTC) usage from the ledger: totals, by day and by model as
    tables; charts over the range picked (analytics)."""
    events = usage_events_of(access.tenant)
    period = UsagePeriod.month_of(timezone.now().date())
    charts, status = USAGE_CHARTS.context(request, access)
    context = {
        "period": period,
        "totals": usage_totals(events, period),
        "by_day": usage_groups(events, period, UsageGrouping.DAY),
        "by_model": usage_groups(events, period, UsageGrouping.MODEL),
        **charts,
    }
    return render(request, "dashboard/usage.html", context, status=status)


@tenant_page
def billing(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The current period's bill from the ledger, the plans side by side with why
    each cannot be bought now, and a warning first when Stripe does not answer."""
    preview = invoice_preview(access.tenant)
    spent = spend_between(access.tenant, preview.period.starts_at, preview.period.ends_at)
    subscribed = preview.subscription_status in LIVE_STATUSES
    health = stripe_health()
    context = {
        "preview": preview,
        "quotas": quota_bars(preview, spent),
        "chart_export": {"base": reverse("dashboard:billing-charts"), "query": ""},
        "subscription_live": subscribed,
        "offers": plan_offers(
            preview.plan,
            subscribed=subscribed,
            can_manage=access.can_manage,
            stripe=STRIPE_REFUSALS.get(health),
        ),
        "stripe_health": health.value,
        "can_manage": access.can_manage,
    }
    return render(request, "dashboard/billing.html", context)


STRIPE_REFUSALS = {
    StripeHealth.NOT_CONFIGURED: Unavailable.NOT_CONFIGURED,
    StripeHealth.UNREACHABLE: Unavailable.STRIPE_DOWN,
    StripeHealth.KEY_REFUSED: Unavailable.STRIPE_KEY_REFUSED,
}


@manager_page
@require_POST
def billing_checkout(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """Off to Stripe Checkout to subscribe to the chosen plan."""
    slug = request.POST.get("plan", "")
    if not slug_re.match(slug):  # no plan has it, and PostgreSQL refuses some (a NUL)
        raise Http404("No such plan.")
    plan = get_object_or_404(Plan.objects.exclude(stripe_price_id=""), slug=slug)
    back = request.build_absolute_uri(reverse("dashboard:billing"))
    with stripe_errors_as_messages(request):
        return redirect(create_checkout_session(access.tenant, plan, f"{back}?checkout=done", back))
    return redirect("dashboard:billing")


@manager_page
@require_POST
def billing_portal(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """Off to Stripe's Customer Portal: payment methods, invoices, plan changes, cancellation."""
    back = request.build_absolute_uri(reverse("dashboard:billing"))
    with stripe_errors_as_messages(request):
        return redirect(create_portal_session(access.tenant, back))
    return redirect("dashboard:billing")


@contextmanager
def stripe_errors_as_messages(request: HttpRequest) -> Iterator[None]:
    try:
        yield
    except (BillingError, StripeNotConfiguredError) as error:
        messages.error(request, str(error))
    except stripe.StripeError:
        logger.exception("Stripe refused or did not answer")
        messages.error(request, "Stripe could not be reached; nothing was changed. Try again in a moment.")
