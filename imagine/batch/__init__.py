"""``imagine batch``: many generations from a JSONL manifest, resumable, with a report.

- ``manifest``: the file format and its validation, before any work starts;
- ``executor``: the ``Executor`` protocol between the run and whatever makes
  images (``local``: this process's GPU; a service executor can slot in later);
- ``local``: the in-process executor (models once, one enrollment per photo set,
  device batches across items);
- ``state``: the per-run state file and the output folder's lock;
- ``runner``: plans, resumes, records and reports one run;
- ``report``: ``report.json`` and the offline ``report.html`` contact sheet.
"""
