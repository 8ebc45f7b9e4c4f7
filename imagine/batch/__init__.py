"""``imagine batch``: many generations from a JSONL manifest, resumable, with a report.

- ``manifest``: the file format and its validation, before any work starts;
- ``executor``: the ``Executor`` protocol between the run and whatever makes
  images, and the registry of executors by name (``local``: this process's GPU;
  ``service``: a running Imagine Me service);
- ``targets``: each executor before the run: what a manifest is checked against,
  the checks before any work, the executor itself;
- ``local``: the in-process executor (models once, one enrollment per photo set,
  device batches across items);
- ``service``: the service executor (jobs in flight on worker threads, idempotent
  resume), over ``client``, the service's HTTP client (retries, Retry-After, SSE);
- ``state``: the per-run state file and the output folder's lock;
- ``runner``: plans, resumes, records and reports one run;
- ``report``: ``report.json`` and the offline ``report.html`` contact sheet.
"""
