"""Department reports as fixed forms (accounting, finance, legal, customer service,
technical) and the legal department's claim letters, in Uzbek Latin, Uzbek Cyrillic, Russian
and English from the catalogs, rendered to PDF (reportlab), XLSX (openpyxl) or CSV;
docs/reports.md describes them."""
