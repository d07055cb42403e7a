-- A rotation marks the token it replaces used (the trigger of 0005). When the page holding
-- that token has room, PostgreSQL updates the row in place (a heap-only update) and none of
-- the table's four indexes gets a new entry; on full pages about a quarter of rotations
-- missed that. New pages are left a fifth free for those updates.
ALTER TABLE refresh_tokens SET (fillfactor = 80);
