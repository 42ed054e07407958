"""Credentials revoked in the middle of a run (the sandbox's config control, between two steps): the
run stops with an AuthenticationError, nothing is written after the revocation, the watermark does
not move; once the credentials are restored, re-runs converge."""

from __future__ import annotations

import pytest

from clientify_sync.engine.vocabulary import Entity, Platform
from clientify_sync.errors import AuthenticationError
from tests.engine.conftest import PLATFORMS
from tests.faults.conftest import CONTACTS_AND_PRODUCTS, TOKENS, Sizes, add_row, build_scenario
from tests.faults.convergence import WRITE_METHODS, converge

REVOKED = {
    "clientify": {"token": "revoked-clientify-token"},
    "facturama": {"password": "revoked-password"},
    "facturadirecta": {"token": "revoked-facturadirecta-token"},
}
CASES = [
    pytest.param("extract_invoicing", "invoicing", id="invoicing-wrong-from-the-start"),
    pytest.param("extract_clientify", "clientify", id="clientify-revoked-after-invoicing-extract"),
    pytest.param("apply_clientify", "clientify", id="clientify-revoked-after-reconcile-before-apply"),
    pytest.param("apply_invoicing", "invoicing", id="invoicing-revoked-between-the-two-applies"),
    pytest.param("apply_clientify", "invoicing", id="invoicing-revoked-before-clientify-apply"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("step", "role"), CASES)
def test_revoked_credentials_stop_the_run_cleanly_then_reruns_converge(
    make_world, fault_table, large, platform: Platform, step: str, role: str
):
    world = make_world()
    scenario = build_scenario(world, platform, Sizes.pick(large))
    api = "clientify" if role == "clientify" else platform.value
    watermarks = dict(world.watermarks)
    revoked_at: list[str] = []

    def revoke(current: str, job) -> None:
        if current == step and not revoked_at:
            world.sandbox.config(api, **REVOKED[api])
            world.sandbox.reset_stats()
            revoked_at.append(current)

    with pytest.raises(AuthenticationError) as caught:
        world.sync(platform, Entity.CONTACTS, before_step=revoke)
    assert revoked_at == [step]
    assert caught.value.api == api and caught.value.status == 401, caught.value
    after = {name: world.sandbox.stats(name)["by_route"] for name in ("clientify", platform.value)}
    rejected = sum(r["count"] for r in after[api] if r["status"] == 401)
    assert rejected >= 1 and all(r["status"] == 401 for r in after[api]), after[
        api
    ]  # nothing reached the API
    other = "clientify" if api != "clientify" else platform.value
    other_writes = [r for r in after[other] if r["method"] in WRITE_METHODS]
    if step.endswith(role):  # the step itself needs the revoked API first: nothing at all is written after
        assert other_writes == [], f"writes after the revocation: {other_writes}"
    else:  # Clientify's own writes go on until a FacturaDirecta link write-back (or apply_invoicing) needs the API
        assert all(r["status"] < 400 for r in other_writes)
    assert world.watermarks == watermarks

    world.sandbox.config(api, **TOKENS[api])
    outcome = converge(world, platform, CONTACTS_AND_PRODUCTS, scenario.edits)
    add_row(fault_table, f"{platform.value}: {api} credentials revoked before {step}", rejected, outcome)
    assert outcome.result.ok, outcome.result.explain()
    assert (outcome.idle_writes, outcome.idle_failed_writes) == (0, 0), outcome.errors
