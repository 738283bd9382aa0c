"""Stripe's door into the platform (public host), and the dashboard's usage and
billing pages (tenant host; billing/web/urls.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import stripe
from django.contrib import messages
from django.core.validators import slug_re
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from aiaas.formats import when
from billing.models import Plan
from billing.models.stripe import LIVE_STATUSES
from billing.plan_changes import PlanChange, change_plan
from billing.selectors import (
    PlanAction,
    Unavailable,
    UsageGrouping,
    UsagePeriod,
    billing_account_of,
    default_plan,
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
    account = billing_account_of(access.tenant)
    health = stripe_health()
    context = {
        "preview": preview,
        "quotas": quota_bars(preview, spent),
        "chart_export": {"base": reverse("dashboard:billing-charts"), "query": ""},
        "subscription_live": preview.subscription_status in LIVE_STATUSES,
        "account": account,
        "default_plan": default_plan(),
        "offers": plan_offers(
            preview.plan, account, can_manage=access.can_manage, stripe=STRIPE_REFUSALS.get(health)
        ),
        # One per rendered page: its buttons' clicks are one change at Stripe (billing/plan_changes.py).
        "change_id": uuid.uuid4(),
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
    plan = get_object_or_404(Plan.objects.exclude(stripe_price_id=""), slug=plan_slug(request))
    back = request.build_absolute_uri(reverse("dashboard:billing"))
    with stripe_errors_as_messages(request):
        return redirect(create_checkout_session(access.tenant, plan, f"{back}?checkout=done", back))
    return redirect("dashboard:billing")


@manager_page
@require_POST
def billing_change_plan(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """The subscription moved to the chosen plan in Stripe; the page says what happens when."""
    plan = get_object_or_404(Plan, slug=plan_slug(request))
    try:
        change_id = uuid.UUID(request.POST.get("change_id", ""))
    except ValueError:
        return HttpResponseBadRequest("The form is incomplete: reload the billing page and try again.")
    unanswered = "Stripe did not answer: reload this page in a minute to see whether your plan changed."
    with stripe_errors_as_messages(request, unanswered):
        messages.success(request, described(change_plan(access.tenant, plan, change_id)))
    return redirect("dashboard:billing")


def plan_slug(request: HttpRequest) -> str:
    slug = request.POST.get("plan", "")
    if not slug_re.match(slug):  # no plan has it, and PostgreSQL refuses some (a NUL)
        raise Http404("No such plan.")
    return slug


def described(change: PlanChange) -> str:
    name = change.plan.name
    if change.already_requested:
        return f"Your move to {name} is already requested: your plan here changes once Stripe confirms it."
    if change.action is PlanAction.END_AT_PERIOD_END:
        ends = when(change.effective_at, "the end of the period")
        return f"Your subscription ends on {ends}: you keep your plan until then, then move to {name}."
    if change.action is PlanAction.KEEP:
        return f"Your subscription continues on {name}: its end is cancelled once Stripe confirms it."
    return (
        f"Your subscription moved to {name} in Stripe; the difference for the rest of the period is "
        "invoiced now. Your plan and limits here follow once Stripe confirms it, usually within seconds."
    )


@manager_page
@require_POST
def billing_portal(request: HttpRequest, access: PageAccess) -> HttpResponse:
    """Off to Stripe's Customer Portal: payment methods, invoices, cancellation."""
    back = request.build_absolute_uri(reverse("dashboard:billing"))
    with stripe_errors_as_messages(request):
        return redirect(create_portal_session(access.tenant, back))
    return redirect("dashboard:billing")


@contextmanager
def stripe_errors_as_messages(
    request: HttpRequest,
    unanswered: str = "Stripe could not be reached; nothing was changed. Try again in a moment.",
) -> Iterator[None]:
    """Billing's refusals and Stripe's failures as a message on the page; `unanswered`
    says what a request Stripe may have received but did not answer did."""
    try:
        yield
    except (BillingError, StripeNotConfiguredError) as error:
        messages.error(request, str(error))
    except stripe.CardError as error:  # a plan change's invoice could not be paid
        declined = error.user_message or "Your card was refused."
        messages.error(
            request,
            f"{declined} Your plan was not changed: update your payment method in the billing portal, "
            "then try again.",
        )
    except (stripe.APIConnectionError, stripe.APIError):
        logger.exception("Stripe did not answer")
        messages.error(request, unanswered)
    except stripe.StripeError:
        logger.exception("Stripe refused the request")
        messages.error(request, "Stripe refused the request; nothing was changed. Try again in a moment.")
