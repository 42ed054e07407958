"""The shared words, as the engine's modules import them: defined in ``clientify_sync.vocabulary``.

The vocabulary moved below every layer so that the watermark rules (which the engine imports) need
nothing of the engine. Import from ``clientify_sync.vocabulary`` in new code; this module only keeps
the existing ``clientify_sync.engine.vocabulary`` imports working.
"""

from __future__ import annotations

from clientify_sync.vocabulary import CRM, INV, Entity, JobSpec, Mode, Platform, Side, SyncOptions

__all__ = ["CRM", "INV", "Entity", "JobSpec", "Mode", "Platform", "Side", "SyncOptions"]
