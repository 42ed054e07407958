"""Two-way sync between the invoicing platforms Facturama and FacturaDirecta and the CRM Clientify."""
