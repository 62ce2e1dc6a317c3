"""Every message the app's workers and widgets post, as dataclasses in one place (toolong's habit).

Messages go up (a worker or widget to its screen, a screen to the app); data goes down through attributes.
A message that carries a complete snapshot says so in `can_replace`, so a newer one stands in for one still
queued and the UI never falls behind its workers."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
