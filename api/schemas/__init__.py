"""Request and response shapes, one module per resource: jobs, uploads, batches, webhooks,
monitoring, and the error body they all share."""
