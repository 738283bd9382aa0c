"""A subscribed tenant changes plan from the billing page: the subscription's
prices are swapped in Stripe (the flat one, and the metered one swapped, added
or removed), once however often the button is pressed; a move to the free plan
ends the subscription with its period. Our plan, and the gateway's limits,
follow only once Stripe's webhook is applied. Bad requests change nothing.

Stripe is localstripe plus the stand-in's subscription update
(testing/stripe_server.py), driven by the real stripe library; page requests
and webhooks run on committed connections of their own, as a server's would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from pytest_django import Settings

from accounts.models import Role
from accounts.tests.factories import browser_for, make_user
from aiaas.formats import when
from billing.models import BillingAccount, CapMode, Plan, StripeEvent
from billing.plan_changes import PRORATION_BEHAVIOR
from billing.selectors import Unavailable
from billing.stripe_api import stripe_client
from billing.tests.factories import (
    DECLINING_CARD,
    BillingAccountFactory,
    PlanFactory,
    customer_paying_by_card,
    pay_by_card,
)
from billing.tests.test_gateway_billing import ask
from billing.tests.test_stripe_webhooks import deliver, eager_tasks, event_of  # noqa: F401 - a fixture
from tenants.models import ApiKeyScope, Tenant
from tenants.services import create_api_key
from testing.database import committed
from testing.stripe_server import StripeStandIn
from testing.tenants import TenantFixture

PAGE = "/dashboard/billing/"
CHANGE = "/dashboard/billing/plan/"
# name: (monthly price, cap, included tokens, metered price name or "")
SHAPES = {
    "small": (Decimal("10"), CapMode.HARD, 10, "tokens"),
    "large": (Decimal("50"), CapMode.SOFT, 10, "tokens"),  # the same metered price as small
    "flat": (Decimal("20"), CapMode.SOFT, 10, ""),
    "xl": (Decimal("90"), CapMode.SOFT, 10, "tokens-xl"),
}


@dataclass
class Subscribed:
    tenant: TenantFixture
    subscription_id: str
    plans: dict[str, Plan]

    def stripe_prices(self) -> set[str]:
        items = stripe_client().v1.subscriptions.retrieve(self.subscription_id).to_dict()["items"]["data"]
        return {item["plan"]["id"] for item in items}

    def item_ids(self) -> set[str]:
        items = stripe_client().v1.subscriptions.retrieve(self.subscription_id).to_dict()["items"]["data"]
        return {item["id"] for item in items}

    def confirm(self) -> None:
        """Stripe's webhook about the subscription as it is now, delivered."""
        now = stripe_client().v1.subscriptions.retrieve(self.subscription_id).to_dict()
        deliver([[event_of("customer.subscription.updated", now)]])

    def customer_id(self) -> str:
        return str(stripe_client().v1.subscriptions.retrieve(self.subscription_id).customer)

    def status(self) -> str:
        return str(stripe_client().v1.subscriptions.retrieve(self.subscription_id).status)

    def plan(self) -> Plan | None:
        return committed(lambda: Tenant.objects.select_related("plan").get(pk=self.tenant.tenant.pk).plan)

    def account(self) -> BillingAccount:
        return committed(lambda: BillingAccount.objects.get(tenant_id=self.tenant.tenant.pk))

    def prices_of(self, name: str) -> set[str]:
        plan = self.plans[name]
        return {price for price in (plan.stripe_price_id, plan.stripe_metered_price_id) if price}


def stripe_price(price_id: str, amount: int, usage_type: str) -> None:
    stripe_client().v1.plans.create(
        params={
            "id": price_id,
            "amount": amount,
            "currency": "usd",
            "interval": "month",
            "usage_type": usage_type,
            "product": {"name": price_id},
        }
    )


def create_plans(suffix: str) -> dict[str, Plan]:
    for metered in {shape[3] for shape in SHAPES.values() if shape[3]}:
        stripe_price(f"price_{metered}_{suffix}", 0, "metered")
    plans = {}
    for name, (price, cap, included, metered) in SHAPES.items():
        stripe_price(f"price_{name}_{suffix}", int(price * 100), "licensed")
        plans[name] = Plan.objects.create(
            slug=f"{name}-{suffix}",
            name=name.title(),
            monthly_price_usd=price,
            cap_mode=cap,
            included_tokens=included,
            stripe_price_id=f"price_{name}_{suffix}",
            stripe_metered_price_id=f"price_{metered}_{suffix}" if metered else "",
        )
    return plans


@pytest.fixture
def subscribe(
    stripe: StripeStandIn,
    serving_tenant: TenantFixture,
    eager_tasks: None,  # noqa: F811 - the fixture
) -> Iterator[Callable[[str], Subscribed]]:
    """serving, subscribed in Stripe to the plan named (flat and metered prices),
    its webhook applied; committed, then undone."""
    tenant = serving_tenant.tenant
    saved_plan_id = tenant.plan_id
    made: list[Subscribed] = []

    def on(name: str) -> Subscribed:
        client = stripe_client()
        plans = committed(lambda: create_plans(uuid.uuid4().hex[:8]))
        customer_id = customer_paying_by_card(client, tenant.name)
        committed(lambda: BillingAccount.objects.create(tenant_id=tenant.pk, stripe_customer_id=customer_id))
        subscription = client.v1.subscriptions.create(
            params={"customer": customer_id, "items": [{"plan": plans[name].stripe_price_id}]}
        )
        if plans[name].stripe_metered_price_id:
            client.v1.subscriptions.update(
                subscription.id, params={"items": [{"price": plans[name].stripe_metered_price_id}]}
            )
        subscribed = Subscribed(serving_tenant, subscription.id, plans)
        made.append(subscribed)
        subscribed.confirm()
        stripe.subscription_updates.clear()
        stripe.idempotent_answers.clear()
        assert subscribed.plan() == plans[name]
        return subscribed

    try:
        yield on
    finally:

        def undo() -> None:
            StripeEvent.objects.filter(
                payload__data__object__id__in=[s.subscription_id for s in made]
            ).delete()
            BillingAccount.objects.filter(tenant=tenant).delete()
            Tenant.objects.filter(pk=tenant.pk).update(plan_id=saved_plan_id)
            Plan.objects.filter(pk__in=[plan.pk for s in made for plan in s.plans.values()]).delete()

        committed(undo)


def change(tenant: TenantFixture, plan: str, change_id: uuid.UUID | str | None = None) -> Any:
    """The owner presses a plan's button on a page rendered with `change_id`; the page it lands on."""
    form = {"plan": plan, "change_id": str(change_id or uuid.uuid4())}
    return committed(lambda: tenant.web_client().post(CHANGE, form, follow=True))


# Switching between plans sold online


def test_a_switch_swaps_the_prices_in_place_and_our_plan_follows_only_the_webhook(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    subscribed = subscribe("small")
    items_before = subscribed.item_ids()
    change_id = uuid.uuid4()

    page = change(subscribed.tenant, subscribed.plans["large"].slug, change_id)

    content = page.content.decode()
    assert page.status_code == 200
    assert "Your subscription moved to Large in Stripe" in content
    assert 'id="plan-change-pending"' in content
    assert subscribed.plan() == subscribed.plans["small"]  # the click changed nothing of ours
    assert subscribed.stripe_prices() == subscribed.prices_of("large")
    assert subscribed.item_ids() == items_before  # swapped in place: the meter's usage stays on its item
    [update] = stripe.subscription_updates
    assert update["params"]["proration_behavior"] == PRORATION_BEHAVIOR == "always_invoice"
    assert update["params"]["cancel_at_period_end"] == "false"  # a paid plan keeps the subscription going
    key = f"tenant-{subscribed.tenant.tenant.pk}:plan-change:{change_id}:{subscribed.plans['large'].pk}"
    assert update["idempotency_key"] == key

    subscribed.confirm()

    assert subscribed.plan() == subscribed.plans["large"]
    assert subscribed.account().requested_plan_id is None
    after = committed(lambda: subscribed.tenant.web_client().get(PAGE)).content.decode()
    assert 'id="plan-change-pending"' not in after


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("small", "flat"),  # the metered item removed
        ("flat", "xl"),  # a metered item added
        ("small", "xl"),  # the metered price swapped
        ("large", "small"),  # plans sharing the metered price: the flat price decides
    ],
)
def test_the_metered_item_follows_the_new_plan_and_the_webhook_finds_the_plan(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn, start: str, target: str
) -> None:
    subscribed = subscribe(start)

    assert change(subscribed.tenant, subscribed.plans[target].slug).status_code == 200
    subscribed.confirm()

    assert subscribed.stripe_prices() == subscribed.prices_of(target)
    assert len(stripe.subscription_updates) == 1
    assert subscribed.plan() == subscribed.plans[target]


def test_a_double_click_changes_the_subscription_once(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    subscribed = subscribe("small")
    change_id = uuid.uuid4()

    with ThreadPoolExecutor(2) as pool:
        pages = list(
            pool.map(lambda _: change(subscribed.tenant, subscribed.plans["xl"].slug, change_id), range(2))
        )

    assert [page.status_code for page in pages] == [200, 200]
    said = sorted("already requested" in page.content.decode() for page in pages)
    assert said == [False, True]
    assert len(stripe.subscription_updates) == 1
    assert subscribed.stripe_prices() == subscribed.prices_of("xl")


def test_a_change_sent_again_with_its_key_replays_stripes_first_answer(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    """As when our note of the change was lost after Stripe made it: Stripe sees the
    same key and the same request, and changes nothing again."""
    subscribed = subscribe("small")
    change_id = uuid.uuid4()
    change(subscribed.tenant, subscribed.plans["large"].slug, change_id)
    committed(
        lambda: BillingAccount.objects.filter(tenant_id=subscribed.tenant.tenant.pk).update(
            requested_plan=None
        )
    )

    page = change(subscribed.tenant, subscribed.plans["large"].slug, change_id)

    assert "Your subscription moved to Large" in page.content.decode()
    assert len(stripe.subscription_updates) == 1
    key = f"tenant-{subscribed.tenant.tenant.pk}:plan-change:{change_id}:{subscribed.plans['large'].pk}"
    assert list(stripe.idempotent_answers) == [key]


def test_a_webhook_arriving_before_the_page_answers_waits_for_the_note_and_clears_it(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    """Stripe's event about the switch is delivered while the page still holds the
    account's row (between Stripe's answer and our note): its processing waits for the
    page to commit, then reads the switched subscription; nothing is left pending."""
    subscribed = subscribe("small")
    pool = ThreadPoolExecutor(1)
    delivered: list[Future[None]] = []

    def webhook_at_once(answer: dict[str, Any]) -> None:
        delivered.append(pool.submit(deliver, [[event_of("customer.subscription.updated", answer)]]))
        time.sleep(0.5)  # the delivery reaches the row lock before the page has its answer

    stripe.on_subscription_update = webhook_at_once
    with pool:
        page = change(subscribed.tenant, subscribed.plans["large"].slug)
        [delivery] = delivered
        delivery.result(timeout=30)

    assert "Your subscription moved to Large in Stripe" in page.content.decode()
    assert subscribed.plan() == subscribed.plans["large"]
    assert subscribed.account().requested_plan_id is None
    after = committed(lambda: subscribed.tenant.web_client().get(PAGE)).content.decode()
    assert 'id="plan-change-pending"' not in after


def test_two_changes_before_any_webhook_end_on_the_last_whatever_order_the_events_come_in(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    subscribed = subscribe("small")
    answers: list[dict[str, Any]] = []
    stripe.on_subscription_update = answers.append

    change(subscribed.tenant, subscribed.plans["large"].slug)
    page = change(subscribed.tenant, subscribed.plans["xl"].slug)  # from a fresh page, at once

    assert "Your subscription moved to Xl in Stripe" in page.content.decode()
    assert subscribed.stripe_prices() == subscribed.prices_of("xl")
    events = [event_of("customer.subscription.updated", answer) for answer in answers]
    deliver([[events[1]], [events[0]]])  # the older snapshot last
    assert subscribed.plan() == subscribed.plans["xl"]
    assert subscribed.account().requested_plan_id is None


def test_cancelled_then_subscribed_again_follows_the_new_subscription_only(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    """Cancelled in the portal (at once): back on the free plan, Checkout offered again;
    a new subscription is followed, and a late event of the cancelled one changes nothing."""
    subscribed = subscribe("small")
    client = stripe_client()
    free = committed(lambda: Plan.objects.get(is_default=True))
    cancelled = client.v1.subscriptions.cancel(subscribed.subscription_id).to_dict()
    deliver([[event_of("customer.subscription.deleted", cancelled)]])
    assert subscribed.plan() == free
    page = committed(lambda: subscribed.tenant.web_client().get(PAGE)).content.decode()
    assert f"Subscribe to {subscribed.plans['large'].name}" in page
    assert "Switch to" not in page

    again = client.v1.subscriptions.create(
        params={
            "customer": subscribed.customer_id(),
            "items": [{"plan": subscribed.plans["large"].stripe_price_id}],
        }
    ).to_dict()
    subscribed.subscription_id = again["id"]  # for the fixture's undo, and the checks below
    deliver([[event_of("customer.subscription.created", again)]])
    deliver([[event_of("customer.subscription.deleted", cancelled)]])  # late, or replayed

    assert subscribed.plan() == subscribed.plans["large"]
    account = subscribed.account()
    assert (account.stripe_subscription_id, account.subscription_status) == (again["id"], "active")
    page = change(subscribed.tenant, subscribed.plans["xl"].slug)
    assert "Your subscription moved to Xl in Stripe" in page.content.decode()
    [update] = stripe.subscription_updates
    assert update["subscription"] == again["id"]


def test_a_stale_page_whose_key_stripe_replays_changes_nothing_and_says_to_reload(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    """Small -> Large from a page, then Large -> XL from a fresh one; the first page's
    Large button pressed again (the back button, an old tab) sends the first request
    with its key: Stripe replays its first answer and changes nothing, so the move to
    Large must not be announced nor noted as requested."""
    subscribed = subscribe("small")
    first_page = uuid.uuid4()
    change(subscribed.tenant, subscribed.plans["large"].slug, first_page)
    subscribed.confirm()
    change(subscribed.tenant, subscribed.plans["xl"].slug)
    subscribed.confirm()
    assert subscribed.plan() == subscribed.plans["xl"]

    page = change(subscribed.tenant, subscribed.plans["large"].slug, first_page)

    content = page.content.decode()
    assert "Your subscription moved to Large" not in content
    assert "This page was out of date: nothing was changed" in content
    assert 'id="plan-change-pending"' not in content
    assert len(stripe.subscription_updates) == 2  # the third was a replay
    assert subscribed.stripe_prices() == subscribed.prices_of("xl")
    assert subscribed.account().requested_plan_id is None
    assert subscribed.plan() == subscribed.plans["xl"]


# A card that declines


def test_an_upgrade_the_card_declines_changes_nothing_and_says_so(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    """The upgrade's proration invoice cannot be paid: Stripe refuses the update, so the
    tenant never holds the dearer plan's limits on an unpaid invoice (nor a past_due
    subscription for it), and the page says what to do."""
    subscribed = subscribe("small")
    pay_by_card(stripe_client(), subscribed.customer_id(), DECLINING_CARD)

    page = change(subscribed.tenant, subscribed.plans["large"].slug)

    content = page.content.decode()
    assert "Your card was declined." in content
    assert "Your plan was not changed" in content
    assert "billing portal" in content
    assert 'id="plan-change-pending"' not in content
    assert stripe.subscription_updates == []
    assert subscribed.stripe_prices() == subscribed.prices_of("small")
    assert subscribed.status() == "active"
    subscribed.confirm()
    assert subscribed.plan() == subscribed.plans["small"]
    assert subscribed.account().subscription_status == "active"
    assert subscribed.account().requested_plan_id is None


def test_a_downgrade_needs_no_payment_and_goes_through_on_a_declining_card(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    subscribed = subscribe("xl")
    pay_by_card(stripe_client(), subscribed.customer_id(), DECLINING_CARD)

    page = change(subscribed.tenant, subscribed.plans["small"].slug)

    assert "Your subscription moved to Small in Stripe" in page.content.decode()
    [update] = stripe.subscription_updates
    assert update["params"]["payment_behavior"] == "error_if_incomplete"
    subscribed.confirm()
    assert subscribed.plan() == subscribed.plans["small"]
    assert subscribed.status() == "active"


# Moving to the free plan


def test_the_free_plan_ends_the_subscription_with_its_period_and_keep_undoes_it(
    subscribe: Callable[[str], Subscribed], stripe: StripeStandIn
) -> None:
    subscribed = subscribe("small")
    free = committed(lambda: Plan.objects.get(is_default=True))
    prices = subscribed.stripe_prices()

    page = change(subscribed.tenant, free.slug)

    ends = when(subscribed.account().current_period_end)
    assert f"ends on {ends}: you keep your plan until then, then move to {free.name}" in page.content.decode()
    assert [update["params"] for update in stripe.subscription_updates] == [{"cancel_at_period_end": "true"}]
    assert subscribed.stripe_prices() == prices
    subscribed.confirm()
    account = subscribed.account()
    assert account.cancel_at_period_end is True
    assert subscribed.plan() == subscribed.plans["small"]  # paid for until the period ends
    ending = committed(lambda: subscribed.tenant.web_client().get(PAGE)).content.decode()
    assert 'id="subscription-ending"' in ending
    assert f"then move to {free.name}." in ending
    assert "Keep Small" in ending

    kept = change(subscribed.tenant, subscribed.plans["small"].slug)

    assert "Your subscription continues on Small" in kept.content.decode()
    assert stripe.subscription_updates[-1]["params"] == {"cancel_at_period_end": "false"}
    subscribed.confirm()
    assert subscribed.account().cancel_at_period_end is False


# The gateway


def test_the_gateway_gets_the_new_plans_limits_once_the_webhook_is_applied(
    gateway: str, subscribe: Callable[[str], Subscribed]
) -> None:
    subscribed = subscribe("small")  # a hard cap at 10 tokens
    key = committed(
        lambda: create_api_key(subscribed.tenant.tenant, name="plans", scopes=[ApiKeyScope.INFERENCE])
    ).secret
    assert ask(gateway, key).status_code == 429

    change(subscribed.tenant, subscribed.plans["large"].slug)  # a soft cap

    assert ask(gateway, key).status_code == 429  # Stripe has the change; we wait for its word
    subscribed.confirm()
    deadline = time.monotonic() + 3  # well before the key cache's own 30 s
    while (answer := ask(gateway, key)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text


# Bad requests change nothing


@pytest.fixture
def live(tenant: TenantFixture, stripe: StripeStandIn) -> TenantFixture:
    """`tenant` with a live subscription (refusals come before Stripe is asked)."""
    BillingAccountFactory.create(tenant_id=tenant.tenant.pk, stripe_subscription_id="sub_refusals")
    return tenant


def post(client: Client, form: dict[str, str]) -> Any:
    return client.post(CHANGE, {"change_id": str(uuid.uuid4()), **form}, follow=True)


@pytest.mark.parametrize("slug", ["no-such-plan", "pro\x00", ""])
def test_an_unknown_plan_is_a_404(live: TenantFixture, stripe: StripeStandIn, slug: str) -> None:
    assert live.web_client().post(CHANGE, {"plan": slug, "change_id": str(uuid.uuid4())}).status_code == 404
    assert stripe.subscription_updates == []


@pytest.mark.parametrize("change_id", ["", "not-a-uuid", "1" * 40])
def test_a_form_without_its_change_id_is_a_400(
    live: TenantFixture, stripe: StripeStandIn, change_id: str
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")

    response = live.web_client().post(CHANGE, {"plan": "team", "change_id": change_id})

    assert response.status_code == 400
    assert b"reload the billing page" in response.content
    assert stripe.subscription_updates == []


def refused_with(response: Any, message: str) -> None:
    assert response.status_code == 200
    assert response.redirect_chain == [(PAGE, 302)]
    assert message in response.content.decode()


def test_the_current_plan_is_refused(live: TenantFixture, stripe: StripeStandIn) -> None:
    current = live.tenant.plan
    assert current is not None

    refused_with(post(live.web_client(), {"plan": current.slug}), Unavailable.CURRENT.value)
    assert stripe.subscription_updates == []


def test_a_plan_not_sold_online_is_refused(live: TenantFixture, stripe: StripeStandIn) -> None:
    PlanFactory.create(slug="custom", monthly_price_usd=Decimal("900"))

    refused_with(post(live.web_client(), {"plan": "custom"}), Unavailable.NOT_SOLD_ONLINE.value)
    assert stripe.subscription_updates == []


def test_a_workspace_without_a_subscription_is_told_to_subscribe(
    tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")

    refused_with(post(tenant.web_client(), {"plan": "team"}), "subscribe to a plan first")
    assert stripe.subscription_updates == []


def test_offline_a_change_says_stripe_is_not_configured(
    live: TenantFixture, stripe: StripeStandIn, settings: Settings
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    settings.STRIPE_SECRET_KEY = ""

    refused_with(post(live.web_client(), {"plan": "team"}), "Stripe is not configured")
    assert stripe.subscription_updates == []


def test_a_member_cannot_change_the_plan(live: TenantFixture, stripe: StripeStandIn) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    member = browser_for(live, make_user(live, role=Role.MEMBER))

    assert member.post(CHANGE, {"plan": "team", "change_id": str(uuid.uuid4())}).status_code == 403
    assert stripe.subscription_updates == []


def test_another_tenants_owner_cannot_change_the_plan(
    live: TenantFixture, other_tenant: TenantFixture, stripe: StripeStandIn
) -> None:
    PlanFactory.create(slug="team", stripe_price_id="price_team")
    outsider = other_tenant.web_client()
    outsider.defaults["HTTP_HOST"] = live.host

    response = outsider.post(CHANGE, {"plan": "team", "change_id": str(uuid.uuid4())})

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={CHANGE}"
    assert stripe.subscription_updates == []
    assert BillingAccount.objects.get(tenant_id=live.tenant.pk).requested_plan_id is None


def test_the_change_takes_only_post(live: TenantFixture) -> None:
    assert live.web_client().get(CHANGE).status_code == 405


def test_stripe_refusing_the_change_is_said_and_nothing_is_noted(live: TenantFixture) -> None:
    """sub_refusals exists only in our database: Stripe answers 404."""
    PlanFactory.create(slug="team", stripe_price_id="price_team")

    refused_with(post(live.web_client(), {"plan": "team"}), "Stripe refused the request; nothing was changed")
    assert BillingAccount.objects.get(tenant_id=live.tenant.pk).requested_plan_id is None
