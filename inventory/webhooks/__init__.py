"""Webhooks: the change feed delivered to HTTP endpoints, signed, at least once.

Each webhook declared in ``inventory.toml`` has a row in ``webhook_endpoints``: its
place in the feed and its lease. A worker that holds the lease (``service``) reads the
feed after that place, turns what passes the webhook's filters into messages
(``payloads``) written as pending deliveries in the same transaction that moves the
place on, and sends them (``dispatch``): signed per Standard Webhooks, each image's in
feed order, several images at once, failures retried on the standard schedule. A new
event wakes the senders at once (``NOTIFY`` from the sync's transaction).
"""
