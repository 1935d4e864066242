"""Server-rendered pages: the customer cabinet (/cabinet) and the staff back office (/staff)."""
