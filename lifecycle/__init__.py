"""The life of a job and what it ends: named state transitions, batches, webhook deliveries, job
events and the outbox, each written in the transaction that changes the job."""
