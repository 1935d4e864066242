"""Department reports (accounting, finance, legal, customer service, technical) as tables,
rendered to XLSX (openpyxl), PDF (reportlab) or CSV."""
