"""The Imagine Me service: REST API, storage, jobs, region gating, web gallery."""
