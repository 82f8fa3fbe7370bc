"""Finance reports of one store and month (``einvoice report audit | reconcile | receivables``).

Pure report building: rows in (ledger records, archive transitions, manifests, the tax platform's
answers, all through the ports of :mod:`chalicelib.reports.ports`) → a report model → a writer (CSV
or PDF bytes). The reads are ``chalicelib/adapters/report_reads.py``; the command line is
``infra/cli_report.py``; what each column means is ``docs/finance.md``.
"""
