"""The concrete clients satisfy the protocols the engine is typed against (``api.protocols``).

The assignments below are checked by mypy (``MYPYPATH=plugins mypy --strict tests/api/test_protocols.py``);
the test checks the resources at run time too.
"""

from __future__ import annotations

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.protocols import CrmClient, CrmResource, InvoicingClient, ListingResource

from .scripted import clientify_settings, facturadirecta_settings, facturama_settings


def test_the_clients_are_what_the_engine_expects() -> None:
    facturama: InvoicingClient = FacturamaClient(facturama_settings())
    facturadirecta: InvoicingClient = FacturaDirectaClient(facturadirecta_settings())
    clientify: CrmClient = ClientifyClient(clientify_settings())
    for invoicing in (facturama, facturadirecta):
        assert all(
            isinstance(r, ListingResource)
            for r in (invoicing.clients, invoicing.products, invoicing.estimates)
        )
        assert invoicing.settings.concurrency == 4
    crm = (clientify.contacts, clientify.companies, clientify.products, clientify.budgets)
    assert all(isinstance(resource, CrmResource) for resource in crm)
    assert clientify.settings.link_field_facturama == "in_facturama"
    for client in (facturama, facturadirecta, clientify):
        client.close()
