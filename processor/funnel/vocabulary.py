"""The words touchpoints use: the SPEC's canonical types, and the channels a breakdown
knows without being told.

Touchpoints may carry any type and channel; these lists only bound what metrics label
(a breakdown's values, a drop-off's last touch type) and seed the simulator.
"""

from __future__ import annotations

# The SPEC's canonical touchpoint types, in its order.
CANONICAL_TYPES = (
    *("ad_impression", "ad_click", "social_engagement", "page_view", "content_view", "engaged_visit"),
    *("newsletter_signup", "content_download", "webinar_attended", "form_submitted", "info_requested"),
    *("product_view", "pricing_view", "comparison_view", "cart_add", "demo_requested", "lead_qualified"),
    *("meeting_held", "quote_requested", "briefing_held", "quote_sent", "quote_accepted", "quote_rejected"),
    *("purchase", "order_delivered", "support_contacted", "complaint_resolved", "review_posted"),
    *("referral_made", "deal_lost", "unsubscribed"),
)
# The values of a channel breakdown that names none: the channels the simulator uses.
DEFAULT_CHANNELS = ("organic", "paid_search", "email", "direct", "referral", "social")
# A bounded label's value for anything not listed, and for a missing value.
OTHER, NONE = "other", "none"
