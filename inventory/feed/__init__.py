"""The change feed, in one place: every change a sync makes is one event of ``image_events``.

- ``write``: the events a sync writes in its own transaction, the notice listeners wake on, pruning;
- ``query``: the statements that read it by position (oldest first, never skipping an event), newest
  first (a history), or by tag;
- ``event``: the one shape of an event that GraphQL, the CLI and webhook payloads show;
- ``replay``: where a tag pointed over time, replayed from events;
- ``follow``: the feed read page by page from a position, on the command line;
- ``render``: events and histories as the CLI prints them.

Scoped reads of it for the API and the other faces are in ``inventory.read.history``.
"""
