"""Webhooks: operators subscribe URLs to order, sign-off, claim, return and alert events;
deliveries are signed, retried from a durable queue and every attempt is recorded."""
