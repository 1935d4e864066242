-- Notifications in the staff's language: a route may name the language of its messages
-- (Telegram, e-mail, the webhook's `text`); NULL = the worker's SUVNET_ALARMS_LANGUAGE.
-- The languages are the catalogs' (api/locale): Uzbek Latin, Uzbek Cyrillic, Russian, English.
ALTER TABLE alarm_routes ADD COLUMN language text
    CHECK (language IS NULL OR language IN ('uz', 'uz_Cyrl', 'ru', 'en'));
