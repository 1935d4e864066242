-- Customer requests registered from the back office, the cabinet and the API (issue 15):
-- the key of the form (or of the program's call) that recorded a request, so that the same
-- form sent again (browser Back, then submit) answers with the first request instead of
-- recording a second one. NULL for rows written by an import or by SQL.

ALTER TABLE customer_requests ADD COLUMN request_key text;
CREATE UNIQUE INDEX customer_requests_request_key ON customer_requests (request_key)
    WHERE request_key IS NOT NULL;
CREATE INDEX customer_requests_open_idx ON customer_requests (received_at)
    WHERE status IN ('open', 'in_progress');
