-- Billed consumption per zone (DMA) and month, for the DMA water balance in alarms.
-- Only the latest invoice of each account and month counts (a correction replaces the
-- regular invoice). The zone is the meter's zone, else the account's zone.
CREATE VIEW billed_consumption_by_zone AS
WITH latest AS (
    SELECT DISTINCT ON (account_id, period) id, account_id, period
    FROM invoices
    ORDER BY account_id, period, id DESC
)
SELECT pc.period,
       coalesce(m.zone_id, a.zone_id) AS zone_id,
       count(DISTINCT pc.account_id)::integer AS accounts,
       sum(pc.volume_m3) AS volume_m3,
       sum(pc.estimated_m3) AS estimated_m3
FROM period_consumption pc
JOIN latest l ON l.id = pc.invoice_id
JOIN meters m ON m.id = pc.meter_id
JOIN accounts a ON a.id = pc.account_id
GROUP BY pc.period, coalesce(m.zone_id, a.zone_id);

COMMENT ON VIEW billed_consumption_by_zone IS
  'Metered consumption billed per zone and month (m³); estimated_m3 is the estimated part';
