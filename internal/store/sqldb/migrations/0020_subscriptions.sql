-- FHIR Subscriptions (rest-hook). The Subscription resource itself is a
-- sealed resource version like any other; this table holds what delivery
-- needs without opening it: the owning client, the resource type of its
-- criteria (a type name, never a criteria value), the scopes granted when
-- it was written, its delivery status and error text (fixed phrases, no
-- PHI), and its signing secret, sealed under the shared data key.
CREATE TABLE subscriptions (
    id      {{text}} PRIMARY KEY,
    client  {{text}} NOT NULL,
    rtype   {{text}} NOT NULL,
    scopes  {{text}} NOT NULL,
    status  {{text}} NOT NULL,
    error   {{text}} NOT NULL,
    secret  {{blob}} NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX subscriptions_rtype ON subscriptions (rtype, status);

-- The outbox: one row per subscription and written resource version,
-- inserted in the write's own transaction, so a notification is never
-- lost between commit and delivery. A dispatcher claims a row with a
-- lease (lease_owner, lease_until) so that replicas sharing the database
-- do not deliver it twice; due and attempts drive the retries. Times are
-- unix microseconds.
CREATE TABLE subscription_outbox (
    subscription {{text}} NOT NULL,
    rtype        {{text}} NOT NULL,
    rid          {{text}} NOT NULL,
    version      BIGINT NOT NULL,
    created      BIGINT NOT NULL,
    due          BIGINT NOT NULL,
    attempts     INTEGER NOT NULL,
    lease_owner  {{text}} NOT NULL,
    lease_until  BIGINT NOT NULL,
    PRIMARY KEY (subscription, rtype, rid, version)
);
CREATE INDEX subscription_outbox_due ON subscription_outbox (due);
